/* 3-component vectors. */
#ifndef MATHX_VEC_H
#define MATHX_VEC_H

typedef struct {
    double x, y, z;
} vec3;

static inline double vec3_dot(vec3 a, vec3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }

static inline vec3 vec3_scale(vec3 a, double k) {
    vec3 r = {a.x * k, a.y * k, a.z * k};
    return r;
}

#endif
