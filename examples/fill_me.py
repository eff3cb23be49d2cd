import os
import sys


def read_lines(path):
    """Return the lines of a text file, without their newlines."""
    with open(path) as handle:
        return [line.<FILL>


def count_words(lines):
    total = 0
    for line in lines:
<FILL>
    return total


if __name__ == "__main__":
    lines = read_lines(sys.argv[1])
    print(count_words(lines), "words in", os.path.basename(sys.argv[1]))
