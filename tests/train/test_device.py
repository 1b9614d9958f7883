from lungfast.train import device


def test_cuda_with_bf16_gets_bf16_channels_last_pinned_workers():
    plan = device.plan_for({"type": "cuda", "bf16": True, "cpus": 16})
    assert (plan.precision, plan.channels_last, plan.pin_memory, plan.num_workers) == ("bf16", True, True, 8)


def test_cuda_without_bf16_falls_back_to_fp16():
    plan = device.plan_for({"type": "cuda", "bf16": False, "cpus": 4})
    assert (plan.precision, plan.num_workers) == ("fp16", 4)


def test_cpu_stays_full_precision_and_unchanged():
    plan = device.plan_for({"type": "cpu", "bf16": False, "cpus": 2})
    assert plan == device.DevicePlan("cpu", "fp32", False, False, 0)
    assert device.plan_for(device.describe()).device == "cpu"  # this machine has no GPU
