"""Tanner-graph girth, checked against an independent brute force on small graphs."""
import time
from collections import deque

import numpy as np
import pytest

from eccflow.codes import get_code
from eccflow.codes.constructions.ldpc import peg_code
from eccflow.codes.graph import girth
from eccflow.errors import CodeFormatError


def brute_force_girth(H):
    """Shortest cycle = 1 + min over edges (c, v) of the shortest v -> c path avoiding that edge."""
    H = np.asarray(H)
    m, n = H.shape
    adjacency = {("v", j): [("c", i) for i in np.flatnonzero(H[:, j])] for j in range(n)}
    adjacency.update({("c", i): [("v", j) for j in np.flatnonzero(H[i])] for i in range(m)})
    best = None
    for i, j in zip(*np.nonzero(H)):
        start, goal = ("v", j), ("c", i)
        dist, queue = {start: 0}, deque([start])
        while queue:
            node = queue.popleft()
            if node == goal or (best is not None and dist[node] + 1 >= best):
                break
            for nxt in adjacency[node]:
                if (node, nxt) == (start, goal) or nxt in dist:
                    continue
                dist[nxt] = dist[node] + 1
                queue.append(nxt)
        if goal in dist and (best is None or dist[goal] + 1 < best):
            best = dist[goal] + 1
    return best


@pytest.mark.parametrize(
    ("name", "expected"),
    [("LDPC_n49_k24", 6), ("MACKAY_n96_k48", 6), ("CCSDS_n128_k64", 6), ("BCH_n15_k7", 6), ("BCH_n31_k16", 4)],
)
def test_girth_of_shared_codes(name, expected):
    code = get_code(name)
    assert girth(code) == expected == brute_force_girth(code.H)


@pytest.mark.parametrize("name", ["BCH_n63_k45", "BCH_n511_k457", "POLAR_n1024_k512", "LDPC_n648_k486"])
def test_four_cycles_are_found_at_once(name):
    code = get_code(name)
    start = time.perf_counter()
    assert girth(code) == 4
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("length", [2, 3, 4, 7])
def test_single_cycle(length):
    # I + P (P the cyclic shift) is the Tanner graph of one cycle through 2 * length nodes.
    H = np.eye(length, dtype=np.uint8) | np.roll(np.eye(length, dtype=np.uint8), 1, axis=1)
    assert girth(H) == 2 * length


def test_acyclic_graphs_have_no_girth():
    assert girth(np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]])) is None  # a path
    assert girth(np.array([[1, 1, 1, 1]])) is None  # a star
    assert girth(np.array([[1, 1, 0, 0, 0], [0, 0, 1, 1, 1], [1, 0, 1, 0, 0]])) is None  # a tree


@pytest.mark.parametrize("seed", range(6))
def test_random_sparse_graphs_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    H = (rng.random((12, 24)) < 0.12).astype(np.uint8)
    H[0, 0] = 1
    assert girth(H) == brute_force_girth(H)


def test_girth_of_a_thousand_bit_ldpc_code_is_fast():
    code = peg_code(1008, 3, 6)
    start = time.perf_counter()
    assert girth(code) == 8
    assert time.perf_counter() - start < 1.0


def test_girth_rejects_non_binary_matrices():
    with pytest.raises(CodeFormatError, match="binary"):
        girth(np.array([[1, 2], [0, 1]]))
