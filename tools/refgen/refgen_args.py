"""The command line every generator in tools/refgen takes: where to write the set and which seed.

  --out DIR   the set's folder (default: tests/data/<set>, the committed set)
  --seed N    draw weights, inputs, case seeds (and, where a generator says so, prompts and sizes)
              from N instead of the committed set's own seeds. Without --seed a generator writes
              the committed set; with one it writes another set of the same layout, which the
              tests must pass on as well (EASEL_TEST_DATA; tools/refgen/regen_all.sh makes them all).
"""

import argparse
import os
import random

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse(set_name, description):
    p = argparse.ArgumentParser(description=description.strip().splitlines()[0])
    p.add_argument("--out", default=os.path.join(ROOT, "tests", "data", set_name),
                   help=f"folder to write the set into (default tests/data/{set_name})")
    p.add_argument("--seed", type=int, default=None,
                   help="make another set of the same layout from this seed (default: the committed set)")
    return p.parse_args()


def seeded(default, seed, salt):
    """`default` for the committed set; with --seed, a number derived from the seed and `salt` (each
    generator names its own streams, so two streams never share a seed)."""
    if seed is None:
        return default
    return random.Random(f"{seed}:{salt}").randrange(1, 2 ** 31)


def choices(seed, salt):
    """A random.Random for the choices a seed makes (sizes, prompts); None for the committed set."""
    return None if seed is None else random.Random(f"{seed}:{salt}")
