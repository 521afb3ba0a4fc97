"""Check that the installed stack is the one this suite needs, and that mmcv's
C++ ops (nms, roi_align forward and backward) really run on every device the
suite will use: the CPU, plus CUDA when torch sees a GPU. Exits 1 with one line
per problem, 2 for a device name torch does not know.

    python tools/check_env.py [--quiet] [--device cuda:1 ...] [--expect-mmcv-cuda 13.0]
    python tools/check_env.py --torch-range   # only: is this Python's torch one the suite supports (exit 2 if not)

The launchers call ``mmcv_ops_problems(devices)`` (``import check_env`` with
tools/ as the script dir) before building a model on a GPU."""
import argparse
import struct
import sys
from pathlib import Path
from typing import Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
# The torch and Python releases a bring-your-own-torch setup (DT_TORCH=system) accepts, major.minor
# inclusive, and those actually run (README "On GPUs"). 2.11 is the lower end because the GPU machines
# users have (torch 2.11.0+cu130, Python 3.12) are what DT_TORCH=system is for; older torch is untried.
SUPPORTED_TORCH = ("2.11", "2.14")
SUPPORTED_PYTHON = ("3.10", "3.12")
TRIED = "torch 2.14.1+cu130 and 2.13.0+cu130 on Python 3.11, CPU only (2026-12-03)"


def _mm(version: str) -> tuple:
    return tuple(int(x) for x in version.split("+")[0].split(".")[:2])


def torch_range_problem() -> Optional[str]:
    """One line when this interpreter's torch or Python is outside the supported range, else None."""
    py = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if not _mm(SUPPORTED_PYTHON[0]) <= _mm(py) <= _mm(SUPPORTED_PYTHON[1]):
        return (f"Python {py} ({sys.executable}) is outside the supported range "
                f"{SUPPORTED_PYTHON[0]}-{SUPPORTED_PYTHON[1]} (tried: {TRIED})")
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - a broken torch is as unusable as a missing one
        return f"no torch importable by {sys.executable} ({type(exc).__name__}: {str(exc).splitlines()[0]})"
    if not _mm(SUPPORTED_TORCH[0]) <= _mm(torch.__version__) <= _mm(SUPPORTED_TORCH[1]):
        return (f"torch {torch.__version__} ({Path(torch.__file__).parent}) is outside the supported range "
                f"{SUPPORTED_TORCH[0]}-{SUPPORTED_TORCH[1]} (tried: {TRIED}); DT_TORCH=pinned installs the "
                "pinned torch instead")
    return None


def default_devices() -> list:
    import torch
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def setup_command() -> str:
    """The command that rebuilds this environment's mmcv for what this machine has."""
    cmd = f"bash {ROOT / 'tools/setup_env.sh'}"
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        cmd = f"DT_VENV={sys.prefix} {cmd}"
    return cmd


def _ops_error(device) -> Optional[str]:
    """Run mmcv's nms and roi_align (forward, backward) on ``device`` against
    torchvision's CPU kernels; the first thing that differs or fails, or None."""
    import torch
    import torchvision
    from mmcv.ops import nms, roi_align
    try:
        boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=torch.float32)
        scores = torch.tensor([0.9, 0.8, 0.7])
        _, keep = nms(boxes.to(device), scores.to(device), iou_threshold=0.5)
        if keep.cpu().tolist() != [0, 2]:
            return f"mmcv.ops.nms returned {keep.cpu().tolist()}, expected [0, 2]"
        feat = torch.arange(32, dtype=torch.float32).view(1, 2, 4, 4)
        rois = torch.tensor([[0, 0.3, 0.6, 3.4, 2.9], [0, 1.0, 1.0, 2.0, 3.0]])
        ours = feat.to(device).detach().clone().requires_grad_()  # leaves, apart from feat
        out = roi_align(ours, rois.to(device), (2, 2), 1.0, 2, "avg", True)
        out.pow(2).sum().backward()
        ref = feat.detach().clone().requires_grad_()
        ref_out = torchvision.ops.roi_align(ref, rois, (2, 2), spatial_scale=1.0, sampling_ratio=2, aligned=True)
        ref_out.pow(2).sum().backward()
        if not torch.allclose(out.detach().cpu(), ref_out.detach(), atol=1e-4):
            return "mmcv.ops.roi_align forward differs from torchvision's"
        if ours.grad is None or not torch.allclose(ours.grad.cpu(), ref.grad, atol=1e-4):
            return "mmcv.ops.roi_align backward differs from torchvision's"
    except Exception as exc:  # noqa: BLE001 - a missing kernel or a CUDA error, reported as one line
        lines = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return None


def mmcv_ops_problems(devices: Optional[Sequence] = None) -> list:
    """One line per device on which mmcv's nms / roi_align do not work (empty: all
    fine). ``devices`` defaults to cpu, plus cuda when torch sees a GPU. Raises
    RuntimeError for a device name torch cannot parse."""
    import torch
    devices = default_devices() if devices is None else list(devices)
    try:
        import mmcv
        from mmcv.ops import get_compiling_cuda_version
    except Exception as exc:  # noqa: BLE001
        return [f"mmcv ops unavailable: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}"]
    built_for = get_compiling_cuda_version()  # 'not available' in a CPU-only build
    problems = []
    for name in devices:
        dev = torch.device(name)
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                problems.append(f"{name}: no GPU is visible to torch {torch.__version__}, so mmcv's CUDA ops "
                                "cannot be checked or used here")
                continue
            if dev.index is not None and dev.index >= torch.cuda.device_count():
                problems.append(f"{name}: torch sees only {torch.cuda.device_count()} GPU(s)")
                continue
            if not built_for[:1].isdigit():
                problems.append(f"mmcv {mmcv.__version__} in {sys.prefix} was built without CUDA ops, so Mask "
                                f"R-CNN (mmcv.ops.nms, RoIAlign) cannot run on {name}; rebuild it with them: "
                                f"{setup_command()}")
                continue
        err = _ops_error(dev)
        if err:
            fix = f" (rebuild: {setup_command()})" if dev.type == "cuda" else ""
            problems.append(f"mmcv ops on {name}: {err}{fix}")
    return problems


def elf_section_names(path) -> list:
    """Section names of a 64-bit little-endian ELF file (readelf -S without binutils)."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError(f"{path} is not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i):  # (name offset, file offset, size)
        base = shoff + i * shentsize
        return struct.unpack_from("<I", data, base)[0], *struct.unpack_from("<QQ", data, base + 0x18)
    _, str_off, str_size = header(shstrndx)
    strtab = data[str_off:str_off + str_size]
    return [strtab[n:strtab.index(b"\0", n)].decode() for n, _, _ in map(header, range(shnum))]


def mmcv_cuda_build_problems(expected_cuda: str) -> list:
    """Without a GPU: is the installed mmcv a CUDA ``expected_cuda`` build whose
    extension carries device code?"""
    import torch  # noqa: F401  (mmcv._ext needs torch's libraries loaded first)
    try:
        import mmcv._ext
        from mmcv.ops import get_compiling_cuda_version
    except Exception as exc:  # noqa: BLE001
        return [f"mmcv ops unavailable: {exc}"]
    built_for = get_compiling_cuda_version()
    if not built_for[:1].isdigit():
        return [f"mmcv was built without CUDA ops, expected a CUDA {expected_cuda} build"]
    if built_for != expected_cuda:
        return [f"mmcv was built for CUDA {built_for}, expected {expected_cuda}"]
    if ".nv_fatbin" not in elf_section_names(mmcv._ext.__file__):
        return [f"{mmcv._ext.__file__} has no .nv_fatbin section: no CUDA device code"]
    return []


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quiet", action="store_true", help="print only problems")
    parser.add_argument("--torch-range", action="store_true",
                        help="only check that this Python and its torch are in the supported range (exit 2 if not)")
    parser.add_argument("--device", action="append", metavar="DEVICE",
                        help="check mmcv's ops on this device (repeatable; default: cpu, plus cuda if visible)")
    parser.add_argument("--expect-mmcv-cuda", metavar="VERSION",
                        help="also require an mmcv built with CUDA VERSION ops carrying device code "
                             "(checkable without a GPU)")
    args = parser.parse_args(argv)
    if args.torch_range:
        problem = torch_range_problem()
        if problem:
            print(f"[check] ERROR: {problem}", file=sys.stderr)
            return 2
        import torch
        if not args.quiet:
            print(f"[check] torch {torch.__version__} on Python {sys.version.split()[0]}: in the supported range "
                  f"torch {'-'.join(SUPPORTED_TORCH)}, Python {'-'.join(SUPPORTED_PYTHON)}")
        return 0
    problems = []

    def report(msg: str) -> None:
        if not args.quiet:
            print(f"[check] {msg}")

    try:
        import mmengine
        import timm
        import torch
        import torchvision
        report(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
               f"timm {timm.__version__}, mmengine {mmengine.__version__}")
    except Exception as exc:  # noqa: BLE001 - we want any import failure reported
        print(f"[check] import failed: {exc}", file=sys.stderr)
        return 1

    devices = args.device or default_devices()
    try:
        for name in devices:
            torch.device(name)
    except RuntimeError as exc:  # a name torch cannot parse is bad input, not a broken stack
        print(f"[check] --device {name}: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return 2
    ops_problems = mmcv_ops_problems(devices)
    problems += ops_problems
    if not ops_problems:
        report(f"mmcv.ops.nms and mmcv.ops.roi_align (forward, backward) run on {', '.join(devices)}")
    if args.expect_mmcv_cuda:
        build_problems = mmcv_cuda_build_problems(args.expect_mmcv_cuda)
        problems += build_problems
        if not build_problems:
            ran = any(torch.device(d).type == "cuda" for d in devices)
            report(f"mmcv's extension is a CUDA {args.expect_mmcv_cuda} build with device code (.nv_fatbin); "
                   + ("its CUDA kernels were checked above" if ran
                      else "its CUDA kernels were not run: no GPU is visible here"))

    try:
        import warnings
        with warnings.catch_warnings():  # its own deprecation notice is not our problem
            warnings.simplefilter("ignore")
            import pkg_resources  # noqa: F401  (mmengine's Config resolves `mmdet::` bases with it)
        report("pkg_resources available for mmengine's cross-package config bases")
    except ImportError:
        problems.append("pkg_resources is missing: mmengine cannot resolve 'mmdet::' config bases "
                        "(setup pins setuptools<70)")

    for mod in ("mmdet", "mmseg"):
        try:
            m = __import__(mod)  # their __init__ asserts the mmcv/mmengine version ranges
            report(f"{mod} {m.__version__} imports and accepts the installed mmcv")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"import {mod} failed: {exc}")

    try:
        import backbones  # noqa: F401
        report("this repository's packages import")
    except Exception as exc:  # noqa: BLE001
        problems.append(f"import backbones failed: {exc}")

    for p in problems:
        print(f"[check] PROBLEM: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
