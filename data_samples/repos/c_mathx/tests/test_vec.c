/* Unit test for vec3_dot; built by `make check`. */
#include <assert.h>

#include "../include/mathx/vec.h"

int main(void) {
    vec3 a = {1, 2, 3}, b = {4, 5, 6};
    assert(vec3_dot(a, b) == 32.0);
    return 0;
}
