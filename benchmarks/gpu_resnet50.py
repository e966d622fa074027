"""The converted model on a GPU with Keras on JAX (no TensorFlow there), side by side.

Two steps, two processes (transpile keeps triton out of its process, and torch.compile needs it):

    KERAS_BACKEND=jax python benchmarks/gpu_resnet50.py transpile OUT   # also checks a zoo on JAX
    KERAS_BACKEND=jax python benchmarks/gpu_resnet50.py bench OUT

``transpile``: resnet50 (random weights, BatchNorm randomized, io_layout="nhwc") into
OUT/resnet50, verified against PyTorch with Keras on JAX (float32 at "highest" precision, so the
1e-4 bound holds on TF32-capable GPUs); then a zoo of torchvision models, each transpiled and
checked the same way (the generated model.py built and run on Keras-JAX on the GPU).

``bench``: ResNet-50, batch 64, 224x224, float32 and bfloat16 (Keras "mixed_bfloat16" policy;
torch.autocast): the generated model on Keras-JAX (jax.jit of stateless_call) against
keras.applications.ResNet50 the same way, PyTorch eager and torch.compile; each framework at its
default GPU precision settings. Medians of timed calls after warm-up, device-synchronized.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness  # noqa: E402

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # torch shares the GPU
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]

ZOO = [
    "resnet18",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "convnext_tiny",
    "shufflenet_v2_x1_0",
    "regnet_y_400mf",
    "vit_b_16",
    "swin_t",
    "segmentation.lraspp_mobilenet_v3_large",
    "segmentation.deeplabv3_mobilenet_v3_large",
]


def _torchvision(path: str):
    return _harness.torchvision_model(path)


def transpile_step(out: Path) -> None:
    import jax
    import torch
    from helpers import randomize_bn, randomize_zero_weights

    from transpiler import transpile

    jax.config.update("jax_default_matmul_precision", "highest")
    print(f"jax {jax.__version__} devices {jax.devices()}; torch {torch.__version__}")
    torch.manual_seed(0)
    model = randomize_bn(_torchvision("resnet50")).eval()
    start = time.perf_counter()
    result = transpile(
        model, torch.randn(1, 3, 224, 224), io_layout="nhwc", out_dir=out / "resnet50"
    )
    torch.save(model.state_dict(), out / "resnet50" / "torch_state.pt")
    print(f"resnet50: transpiled and verified on Keras-JAX in {time.perf_counter() - start:.1f} s")
    print("| model | batch | max abs error | scaled | ok |")
    print("|---|---|---|---|---|")
    for c in result.report.checks:
        print(f"| resnet50 | {c.batch_size} | {c.max_abs:.2e} | {c.max_rel:.2e} | {c.ok} |")
    zoo = os.environ.get("BENCH_ZOO", ",".join(ZOO)).split(",")
    for name in filter(None, zoo):
        torch.manual_seed(0)
        model = randomize_zero_weights(randomize_bn(_torchvision(name))).eval()
        with tempfile.TemporaryDirectory() as tmp:
            try:
                result = transpile(model, torch.randn(1, 3, 224, 224), out_dir=tmp)
            except Exception as exc:  # noqa: BLE001 - a table row
                print(f"| {name} | - | {type(exc).__name__}: {str(exc)[:200]} | | False |")
                continue
            for c in result.report.checks:
                print(f"| {name} | {c.batch_size} | {c.max_abs:.2e} | {c.max_rel:.2e} | {c.ok} |")
        sys.stdout.flush()


def _time(fn, sync, warmup: int = 5, iters: int = 30) -> float:
    for _ in range(warmup):
        sync(fn())
    samples = []
    for _ in range(iters):
        start = time.perf_counter()
        sync(fn())
        samples.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(samples)


def _keras_jitted(model):
    import jax

    tv = [v.value for v in model.trainable_variables]
    ntv = [v.value for v in model.non_trainable_variables]

    @jax.jit
    def run(tv, ntv, x):
        y, _ = model.stateless_call(tv, ntv, x, training=False)
        return y

    return lambda x: run(tv, ntv, x)


def bench_step(out: Path) -> None:
    import importlib.util

    import jax
    import jax.numpy as jnp
    import keras
    import numpy as np
    import torch
    import torchvision

    def import_module_from(path: Path):  # plain import: no process hygiene (triton stays usable)
        spec = importlib.util.spec_from_file_location(f"generated_{id(path)}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    batch = 64
    print(f"GPU: {torch.cuda.get_device_name()}; jax {jax.__version__}; torch {torch.__version__}")
    x_np = np.random.default_rng(0).standard_normal((batch, 224, 224, 3), dtype=np.float32)
    tmodel = torchvision.models.resnet50(weights=None)
    tmodel.load_state_dict(torch.load(out / "resnet50" / "torch_state.pt"))
    tmodel = tmodel.cuda().eval()
    xt = torch.from_numpy(x_np).permute(0, 3, 1, 2).contiguous().cuda()
    compiled = torch.compile(tmodel)
    rows = []
    for precision in ("float32", "bfloat16"):
        keras.config.set_dtype_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
        ours = import_module_from(out / "resnet50" / "model.py").load_model(
            str(out / "resnet50" / "model.weights.h5")
        )
        ref = keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3))
        xj = jnp.asarray(x_np)
        ours_fn, ref_fn = _keras_jitted(ours), _keras_jitted(ref)
        if precision == "float32":  # the generated model agrees with PyTorch here too
            with torch.no_grad():
                y_t = tmodel(xt).float().cpu().numpy()
            y_o = np.asarray(ours_fn(xj), dtype=np.float32)
            err = float(np.abs(y_o - y_t).max()) / max(1.0, float(np.abs(y_t).max()))
            print(f"float32 GPU scaled error ours vs torch (default precisions): {err:.2e}")
        ctx = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if precision == "bfloat16"
            else torch.autocast("cuda", enabled=False)
        )

        def torch_sync(y):
            torch.cuda.synchronize()

        def jax_sync(y):
            y.block_until_ready()

        with torch.no_grad(), ctx:
            t_eager = _time(lambda: tmodel(xt), torch_sync)
            t_comp = _time(lambda: compiled(xt), torch_sync, warmup=3)
        run_ours, run_ref = (lambda f=ours_fn, x=xj: f(x)), (lambda f=ref_fn, x=xj: f(x))
        t_ours, t_ref = _time(run_ours, jax_sync), _time(run_ref, jax_sync)
        # a second pass of the two Keras models, in turn (the ratio takes the better of each)
        t_ours2, t_ref2 = _time(run_ours, jax_sync), _time(run_ref, jax_sync)
        rows.append((precision, t_ours, t_ours2, t_ref, t_ref2, t_eager, t_comp))
    print(
        "\n| precision | ours Keras-JAX ms | keras.applications Keras-JAX ms | ref/ours "
        "(≥ 0.95 target) | PyTorch eager ms | torch.compile ms | ours img/s |"
    )
    print("|---|---|---|---|---|---|---|")
    for precision, o1, o2, r1, r2, te, tc in rows:
        o, r = min(o1, o2), min(r1, r2)
        print(
            f"| {precision} | {o:.2f} ({o1:.2f}, {o2:.2f}) | {r:.2f} ({r1:.2f}, {r2:.2f}) "
            f"| {r / o:.3f} | {te:.2f} | {tc:.2f} | {64000.0 / o:.0f} |"
        )


if __name__ == "__main__":
    step, folder = sys.argv[1], Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    {"transpile": transpile_step, "bench": bench_step}[step](folder)
