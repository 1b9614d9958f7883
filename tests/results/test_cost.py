"""What a network costs to run: torch's flop count, throughput, and the Pareto front the report draws."""

import pandas as pd
import torch

from lungfast.results import charts, cost


def test_gflops_are_torchs_count_of_the_multiply_adds():
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1))
    macs = 8 * 3 * 9 * 32 * 32  # output channels x input channels x kernel x output pixels
    assert cost.gflops(conv, 32, {"device": "cpu", "precision": "fp32"}) == 2 * macs / 1e9


def test_measure_gives_every_record_key_and_leaves_the_model_in_eval_mode():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Dropout(0.5), torch.nn.Flatten()).train()
    got = cost.measure(model, 32, {"device": "cpu", "precision": "fp32", "channels_last": False})
    assert set(got) == {"gflops", "infer_img_per_s_b1", "infer_img_per_s_b64"} and not model.training
    assert got["gflops"] > 0 and got["infer_img_per_s_b1"] > 0 and got["infer_img_per_s_b64"] > 0


def test_the_pareto_front_keeps_what_nothing_beats_on_both():
    speed = pd.Series([10.0, 100.0, 50.0, 100.0, 5.0])
    acc = pd.Series([0.99, 0.90, 0.89, 0.85, 0.99])
    # 0: most accurate (beats 4 on speed at equal accuracy); 1: fastest; 2: slower and worse than 1; 3: as fast
    # as 1 and worse; 4: as accurate as 0 and slower
    assert charts.pareto_front(speed, acc).tolist() == [True, True, False, False, False]
