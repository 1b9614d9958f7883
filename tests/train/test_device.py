"""Device plans chosen from device descriptions (CUDA and CPU alike), and the CPU bf16 callback."""

import pytest
import torch

from lungfast.train import device

XEON = {"type": "cpu", "bf16": True, "cpus": 2, "bf16_units": ["amx_bf16", "avx512_bf16"]}
PLAIN_CPU = {"type": "cpu", "bf16": False, "cpus": 2, "bf16_units": []}


def test_cuda_with_bf16_gets_bf16_channels_last_pinned_workers():
    plan = device.plan_for({"type": "cuda", "bf16": True, "cpus": 16})
    assert (plan.precision, plan.channels_last, plan.pin_memory, plan.num_workers) == ("bf16", True, True, 8)


def test_cuda_without_bf16_falls_back_to_fp16():
    plan = device.plan_for({"type": "cuda", "bf16": False, "cpus": 4})
    assert (plan.precision, plan.num_workers) == ("fp16", 4)


def test_a_cpu_with_bf16_units_trains_and_infers_in_bf16_channels_last():
    plan = device.plan_for(XEON)
    assert (plan.device, plan.precision, plan.channels_last, plan.pin_memory, plan.num_workers) == (
        "cpu",
        "bf16",
        True,
        False,
        0,
    )
    assert "amx_bf16" in plan.why


def test_a_cpu_without_them_stays_fp32_nchw_and_says_why():
    plan = device.plan_for(PLAIN_CPU)
    assert (plan.precision, plan.channels_last) == ("fp32", False) and "without bf16 matrix units" in plan.why


@pytest.mark.parametrize("desc", [XEON, PLAIN_CPU, {"type": "cuda", "bf16": True, "cpus": 8}])
def test_the_experiment_can_ask_fp32_or_force_bf16(desc):
    assert device.plan_for(desc, "fp32").precision == "fp32" and "fp32 asked" in device.plan_for(desc, "fp32").why
    if desc["type"] == "cpu":
        assert device.plan_for(desc, "bf16").precision == "bf16"


def test_this_machine_is_described_from_its_own_flags():
    desc = device.describe(cpu=True)
    assert desc["type"] == "cpu" and desc["bf16"] == bool(set(device.BF16_UNITS) & device.cpu_flags())
    assert device.plan_for(device.describe()).device == "cpu"  # this machine has no GPU


def test_cpu_autocast_runs_forward_and_loss_in_bf16_and_hands_back_fp32():
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from torch import nn

    from lungfast.train.callbacks import CpuAutocast

    seen = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.head = nn.Conv2d(3, 4, 3), nn.Linear(4, 2)

        def forward(self, x):
            y = self.conv(x)
            seen.append((torch.is_autocast_enabled("cpu"), y.dtype, x.is_contiguous(memory_format=torch.channels_last)))
            return self.head(y.mean((2, 3)))

    xs, ys = torch.randn(8, 3, 8, 8), torch.randint(0, 2, (8,))
    data = list(zip(xs, ys))
    dls = DataLoaders.from_dsets(data, data, bs=4, device="cpu")
    learn = Learner(dls, Probe(), loss_func=nn.CrossEntropyLoss(), cbs=[CpuAutocast()])
    learn.fit(1, 1e-3)
    preds, _ = learn.get_preds()
    assert seen and all(s == (True, torch.bfloat16, True) for s in seen)
    assert preds.dtype == torch.float32 and learn.model.head.weight.dtype == torch.float32  # fp32 master weights
    assert not torch.is_autocast_enabled("cpu")  # left after every batch
