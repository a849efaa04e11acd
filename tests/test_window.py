"""Window decoding of SC-LDPC chains: window graphs, neural min-sum, reachability, schedules, complexity, EP."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from eccflow.codes import get_code
from eccflow.codes.constructions.sc_ldpc import sc_ldpc_code
from eccflow.data.boosting import BoostingDataModule, collect_ep_samples, load_ep_samples
from eccflow.lit.families import build_network
from eccflow.decoders.message_passing import BeliefPropagationDecoder
from eccflow.decoders.window import (ChainDecoder, WindowDecoder, WindowGraph, normalized_reach, reach_counts,
                                     skip_order, window_starts)
from eccflow.decoders.window_complexity import window_complexity
from eccflow.errors import ConfigError, EccflowError
from eccflow.eval.chain import evaluate_chain, evaluate_chains_paired
from eccflow.lit import load_decoder, save_decoder
from eccflow.lit.window import soft_block_error


@pytest.fixture(scope="module")
def tiny():
    """(3,6) chain, w = 3, L = 3, M = 1: small enough to count by hand."""
    return sc_ldpc_code(3, 6, 3, 3, 1)


@pytest.fixture(scope="module")
def chain():
    return sc_ldpc_code(3, 6, 3, 8, 8)


def test_window_graph_slices_the_chain(tiny):
    g = WindowGraph(tiny, 1, 2, 1)  # checks at positions 1, 2; active positions 1, 2; fixed position 0
    assert (g.n_active, g.n_fixed, g.num_checks) == (4, 2, 2)
    assert np.bincount(g.edge_check.numpy()).tolist() == [4, 6]  # check degrees with their fixed inputs
    assert g.targets.tolist() == [0, 1] and g.active_vars.tolist() == [2, 3, 4, 5] and g.fixed_vars.tolist() == [0, 1]
    assert int(g.edge_fixed.sum()) == 4
    first = WindowGraph(tiny, 0, 2, 1)
    assert first.n_fixed == 0


def test_windows_cover_every_position_once(chain):
    decoder = WindowDecoder(chain, 4, 2, 2, neural=False, normalization=0.75)
    targets = torch.cat(ChainDecoder(decoder).target_masks())
    assert sorted(targets.tolist()) == list(range(chain.n))
    assert window_starts(chain, 2) == [0, 2, 4, 6]


def test_bad_windows_are_clear_errors(chain):
    with pytest.raises(ConfigError, match="larger than the chain"):
        WindowDecoder(chain, 9, 1)
    with pytest.raises(ConfigError, match="smaller than the window"):
        WindowDecoder(chain, 3, 3)
    with pytest.raises(ConfigError, match="not a protograph SC-LDPC chain"):
        WindowDecoder(get_code("BCH_n15_k7"), 3, 1)
    with pytest.raises(ConfigError, match="min-sum"):
        WindowDecoder(chain, 3, 1, check_update="sum-product", neural=True)


def test_independent_window_is_min_sum_on_its_subgraph(chain):
    """With no fixed inputs the window decoder is flooding normalised min-sum on the window's sub-matrix."""
    decoder = WindowDecoder(chain, 3, 1, 4, neural=False, normalization=0.75)
    g = decoder.graph
    reference = BeliefPropagationDecoder(g.active_code, iterations=4, check_update="min-sum", normalization=0.75)
    llr = 2.0 + 2.0 * torch.randn(64, g.n_active)
    assert torch.allclose(decoder(llr).llr, reference(llr).llr, atol=1e-4)


def test_known_fixed_inputs_change_nothing_for_min_sum(chain):
    """Fixed variables known to be 0 (huge positive LLR) never win a minimum nor flip a sign."""
    decoder = WindowDecoder(chain, 3, 1, 3, neural=False, normalization=0.75)
    g = WindowGraph(chain, 2, 3, 1)
    llr = 2.0 + 2.0 * torch.randn(16, g.n_active)
    a = decoder(llr, torch.full((16, g.n_fixed), 1e4), g).llr
    b = decoder(llr, None, g).llr
    assert torch.allclose(a, b)


def test_skipping_the_last_iteration_equals_one_iteration_less(chain):
    llr = 2.0 + 2.0 * torch.randn(32, WindowGraph(chain, 0, 3, 1).n_active)
    full = WindowDecoder(chain, 3, 1, 4, weight_init=0.8)
    full.set_skip([(3, c) for c in range(full.proto_checks)])
    shorter = WindowDecoder(chain, 3, 1, 3, weight_init=0.8)
    assert torch.allclose(full(llr).llr, shorter(llr).llr)
    with pytest.raises(ConfigError, match="outside"):
        full.set_skip([(4, 0)])


def test_damping_interpolates_between_update_and_skip(chain):
    llr = 2.0 + 2.0 * torch.randn(32, WindowGraph(chain, 0, 3, 1).n_active)
    damped, plain = WindowDecoder(chain, 3, 1, 3, damping=True), WindowDecoder(chain, 3, 1, 3)
    assert torch.allclose(damped(llr).llr, plain(llr).llr)  # beta = 0
    with torch.no_grad():
        damped.beta[2].fill_(1.0)
    plain.set_skip([(2, c) for c in range(plain.proto_checks)])
    assert torch.allclose(damped(llr).llr, plain(llr).llr)  # beta = 1 keeps the previous message


def test_reach_counts_by_hand(tiny):
    g = WindowGraph(tiny, 1, 2, 1)
    counts = reach_counts(g, 1)
    # one iteration: a message counts iff it enters a target; targets are the two position-1 variables
    per_check = np.bincount(g.edge_check.numpy(), counts[0], minlength=2)
    assert per_check.tolist() == [2.0, 2.0]
    two = reach_counts(g, 2)
    # second-to-last iteration: messages to position-2 variables (degree 1 in the window) reach nothing
    to_position_2 = np.isin(g.edge_var.numpy(), [2, 3]) & ~g.edge_fixed.numpy()
    assert (two[0][to_position_2] == 0).all() and (two[0][~to_position_2 & ~g.edge_fixed.numpy()] > 0).all()
    assert (counts[:, g.edge_fixed.numpy()] == 0).all()


def test_target_scope_removes_unreachable_weights():
    code = get_code("scldpc_dv3_dc6_w3_L20_M50")
    target, everything = WindowDecoder(code, 5, 1, 5, scope="target"), WindowDecoder(code, 5, 1, 5, scope="all")
    assert everything.stored_weights == 25 and target.stored_weights == 23
    assert not target.kept[4, 3:].any()  # rear checks at the last iteration cannot reach position 0
    rho = normalized_reach(target)
    assert rho.shape == (5, 5) and np.allclose(rho.max(axis=1), 1.0) and (rho[4, 3:] == 0).all()


def test_skip_order_follows_the_schedule_importance():
    kept = np.ones((3, 2), dtype=bool)
    kept[2, 1] = False
    importance = np.array([[0.9, 0.1], [0.2, 0.0], [0.0, 0.8]])
    order = skip_order(importance, kept)
    assert order == [(0, 0), (1, 0), (0, 1), (2, 0), (1, 1)]  # ties (0.0): later iteration first
    assert (2, 1) not in order


def test_complexity_matches_hand_counts(tiny):
    """W = 2, p = 1 on the steady-state window (checks of degree 4 and 6; 2 + 4 outputs; 2 targets of degree 2)."""
    wd = window_complexity(WindowDecoder(tiny, 2, 1, 1, neural=False, normalization=0.75))
    assert (wd.additions, wd.comparisons, wd.sign_multiplications, wd.weight_multiplications) == (4, 14, 14, 6)
    assert wd.energy == pytest.approx(4 + 14 + 0.3 * 14 + 4 * 6)
    bp = window_complexity(WindowDecoder(tiny, 2, 1, 1, neural=False, check_update="sum-product"))
    assert (bp.table_lookups, bp.additions, bp.sign_multiplications, bp.comparisons, bp.stored_weights) == (16, 18, 14, 0, 0)
    nwd = window_complexity(WindowDecoder(tiny, 2, 1, 1))  # target-specific: only messages into the targets
    assert (nwd.additions, nwd.comparisons, nwd.sign_multiplications, nwd.weight_multiplications) == (4, 14, 12, 4)
    wd2 = window_complexity(WindowDecoder(tiny, 2, 1, 2, neural=False, normalization=0.75))
    # second iteration: variable updates (2 vars: 2 + 2 adds, 2 vars: 1 + 1 adds) and the checks again
    assert (wd2.additions, wd2.comparisons, wd2.sign_multiplications, wd2.weight_multiplications) == (16, 28, 28, 12)
    adaptive = window_complexity(WindowDecoder(tiny, 2, 1, 1), adaptive=True)
    assert adaptive.sign_multiplications == 12 + 5 and adaptive.stored_weights == 2 * nwd.stored_weights


def test_ucn_detector_flags_an_odd_error_in_the_previous_targets(chain):
    decoder = ChainDecoder(WindowDecoder(chain, 3, 1, 2, neural=False, normalization=0.75),
                           WindowDecoder(chain, 3, 1, 2), "ucn")
    decision = torch.full((2, chain.n), 5.0)
    first_target = decoder.graphs[0].active_vars[decoder.graphs[0].targets][0]
    decision[1, first_target] = -5.0  # frame 1: one wrong bit in window 0's targets
    flags = decoder._detect(decision, 0, torch.device("cpu"))
    assert flags.tolist() == [False, True]


def test_genie_needs_the_truth(chain):
    decoder = ChainDecoder(WindowDecoder(chain, 3, 1, 2), WindowDecoder(chain, 3, 1, 2), "genie")
    with pytest.raises(ConfigError, match="transmitted bits"):
        decoder(torch.ones(2, chain.n))
    with pytest.raises(ConfigError, match="both"):
        ChainDecoder(WindowDecoder(chain, 3, 1, 2), None, "ucn")


def test_chain_statistics_are_consistent(chain):
    decoder = ChainDecoder(WindowDecoder(chain, 3, 1, 3, neural=False, normalization=0.75))
    point = evaluate_chain(decoder, [2.0], min_frame_errors=50, max_frames=400, batch_size=200)[0]
    assert point.frame_errors >= 1 and len(point.window_bler) == decoder.num_windows
    assert 0.0 <= point.ep_probability <= 1.0 and point.ep_trials >= point.ep_events
    assert point.fer_ci95[0] <= point.fer <= point.fer_ci95[1]
    assert max(point.window_bler) <= point.fer + 1e-12


def test_chain_decoders_are_paired_on_the_same_chains(chain):
    wd = ChainDecoder(WindowDecoder(chain, 3, 1, 3, neural=False, normalization=0.75))
    bp = ChainDecoder(WindowDecoder(chain, 3, 1, 3, neural=False, check_update="sum-product"))
    curves, paired = evaluate_chains_paired({"WD": wd, "WD again": wd, "WD-BP": bp}, [2.0], min_frame_errors=50,
                                            max_frames=400, batch_size=200, pairs=[("WD again", "WD"), ("WD-BP", "WD")])
    alone = evaluate_chain(bp, [2.0], min_frame_errors=50, max_frames=400, batch_size=200)[0]
    assert curves["WD"][0].frames == curves["WD-BP"][0].frames  # the point stops for all at once
    assert curves["WD"][0].bit_errors == curves["WD again"][0].bit_errors
    same = paired[0]
    assert same.d_fer == 0 and same.frames_only_decoder_failed == same.frames_only_baseline_failed == 0
    assert same.fer_verdict == "not resolved" and paired[1].baseline == "WD"
    assert curves["WD-BP"][0].frames >= alone.frames  # the same chains as far as the single run went


def test_soft_block_error_tends_to_the_block_error():
    bits = torch.tensor([[0.0, 1.0, 0.0]])
    assert soft_block_error(torch.tensor([[20.0, -20.0, 20.0]]), bits).item() < 1e-6
    assert soft_block_error(torch.tensor([[20.0, 20.0, 20.0]]), bits).item() > 1 - 1e-6


def test_weight_file_for_another_iteration_count_is_a_clear_error(chain, tmp_path: Path):
    config = {"family": "nwd", "window": 3, "target": 1, "iterations": 3}
    path = save_decoder(build_network(chain, config), config, chain.name, tmp_path / "nwd.ckpt")
    assert load_decoder(path).iterations == 3
    other = build_network(chain, {**config, "iterations": 4})
    from eccflow.lit import load_weights

    with pytest.raises(EccflowError, match="shape mismatch"):
        load_weights(other, path)
    with pytest.raises(ConfigError, match="does not fit"):
        other.load_weight_set(torch.ones(3, 3))
    wrong_protograph = sc_ldpc_code(3, 6, 3, 8, 8, edge_spreading=[np.array([[2, 1]]), np.array([[1, 1]]), np.array([[0, 1]])])
    with pytest.raises(ConfigError, match="another window protograph"):
        load_weights(build_network(wrong_protograph, config), path)


def test_boosting_collects_connected_windows(chain, tmp_path: Path):
    decoder = ChainDecoder(WindowDecoder(chain, 3, 1, 2, neural=True, weight_init=0.75))
    data = collect_ep_samples(decoder, 1.5, samples=40, max_frames=400, batch_size=100)
    assert data["samples"] == 40 and 0 not in data["windows"]
    for j, entry in data["windows"].items():
        g = decoder.graphs[j]
        assert entry["llr"].shape[1] == g.n_active and entry["fixed_llr"].shape[1] == g.n_fixed
    path = tmp_path / "ep.pt"
    torch.save(data, path)
    assert load_ep_samples(path, decoder)["samples"] == 40
    other = ChainDecoder(WindowDecoder(chain, 4, 1, 2))
    with pytest.raises(EccflowError, match="collected for"):
        load_ep_samples(path, other)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(EccflowError, match="corrupt"):
        load_ep_samples(path, decoder)
    module = BoostingDataModule(data, batch_size=8, val_fraction=0.25)
    batch = next(iter(module.train_dataloader()))
    assert {"llr", "fixed_llr", "bits", "window"} <= set(batch)
    assert batch["llr"].shape[1] == decoder.graphs[batch["window"]].n_active
    direct = BoostingDataModule.from_chain(decoder, 1.5, samples=40, max_frames=400)
    assert sum(len(b["llr"]) for b in direct.train_dataloader()) + sum(len(b["llr"]) for b in direct.val_dataloader()) == 40


def test_proto_edge_sharing_refines_proto_check_sharing(chain):
    by_check = WindowDecoder(chain, 3, 1, 3, weight_init=0.7, scope="all")
    by_edge = WindowDecoder(chain, 3, 1, 3, weight_init=0.7, weight_sharing="proto-edge", scope="all")
    assert by_edge.weights.shape[1] == by_edge.proto_edges > by_check.weights.shape[1] == by_check.proto_checks
    llr = 2.0 + 2.0 * torch.randn(16, by_check.graph.n_active)
    assert torch.allclose(by_check(llr).llr, by_edge(llr).llr)  # equal weights: the same decoder
