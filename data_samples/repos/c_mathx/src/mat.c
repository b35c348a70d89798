/* Matrix routines. */
#include <mathx/mat.h>
#include <string.h>

mat3 mat3_identity(void) {
    mat3 m;
    memset(&m, 0, sizeof m);
    m.rows[0].x = m.rows[1].y = m.rows[2].z = 1.0;
    return m;
}

vec3 mat3_apply(mat3 m, vec3 v) {
    vec3 r = {vec3_dot(m.rows[0], v), vec3_dot(m.rows[1], v), vec3_dot(m.rows[2], v)};
    return r;
}
