#include <iostream>

int main() {
  std::cout << "easel\n";
  return 0;
}
