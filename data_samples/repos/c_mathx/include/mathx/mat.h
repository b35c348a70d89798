/* 3x3 matrices acting on vec3. */
#ifndef MATHX_MAT_H
#define MATHX_MAT_H

#include "vec.h"

typedef struct {
    vec3 rows[3];
} mat3;

mat3 mat3_identity(void);
vec3 mat3_apply(mat3 m, vec3 v);

#endif
