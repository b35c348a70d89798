"""A read-eval-print loop: python -m calc.repl"""

from calc import run

if __name__ == "__main__":
    while True:
        try:
            line = input("calc> ")
        except EOFError:
            break
        print(run(line))
