// A fixed-width text table for printing results.
#pragma once
#include <iostream>
#include <string>
#include <vector>

class Table {
  public:
    void add_row(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
    void print(std::ostream &out) const {
        for (const auto &row : rows_) {
            for (const auto &cell : row) out << cell << '\t';
            out << '\n';
        }
    }

  private:
    std::vector<std::vector<std::string>> rows_;
};
