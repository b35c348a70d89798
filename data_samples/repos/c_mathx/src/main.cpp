// Demo: rotate a few vectors and print them as a table.
#include <string>

#include "mathx/mat.h"
#include "table.hpp"

int main() {
    mat3 m = mat3_identity();
    Table t;
    for (int i = 0; i < 3; ++i) {
        vec3 v = {double(i), 1.0, 2.0};
        vec3 r = mat3_apply(m, vec3_scale(v, 2.0));
        t.add_row({std::to_string(r.x), std::to_string(r.y), std::to_string(r.z)});
    }
    t.print(std::cout);
    return 0;
}
