#!/bin/bash
# The GPU-host check: `pinner doctor`, `pinner verify` and the rendered verify step on a host that
# already has torch installed, with no network. Prepare on a networked machine, from the repository
# root:
#   (cd tools/gpu-host && pinner generate)    # lock + pinned/ for the host's installed versions
#   pip wheel --no-deps -w .whl . && pip download --no-deps -d .whl tomlkit uv ...  # what it lacks
# then, on the host, from a copy of the repository: OUT=<folder> bash tools/gpu-host/run.sh
# requirements.in pins the host's torch stack at its installed versions (read from `pip list`
# there), so a correct install must verify clean. README "pinner verify" quotes a run.
set -u
export PYTHONUNBUFFERED=1
ROOT=$PWD
OUT=${OUT:-/tmp/gpu-host}
mkdir -p "$OUT"
{
  echo "== host"; date -u; nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv
  command -v python3; python3 -V
  python3 -c "import torch, importlib.metadata as m; print('torch.__version__', torch.__version__, 'dist', m.version('torch'), 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
  echo "== pip list --format=freeze"; python3 -m pip list --format=freeze 2>/dev/null
} > "$OUT/host.txt" 2>&1
head -8 "$OUT/host.txt"
# pinner and the dependencies the host lacks, none of them a locked package (verify would see them)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH
cd "$ROOT/tools/gpu-host"
echo "== pinner --version"; pinner --version
echo "== pinner doctor"; pinner doctor; echo "rc=$?"
pinner doctor --json > "$OUT/doctor.json"; echo "doctor --json rc=$?"
echo "== pinner verify --target h200 --gpu"; pinner verify --target h200 --gpu; echo "rc=$?"
pinner verify --target h200 --gpu --json > "$OUT/verify.json"; echo "verify --json rc=$?"
echo "== verify step, as the Dockerfile and install.sh run it (pinner not installed)"
(cd pinned/h200 && env -u PYTHONPATH python3 verify_env.py); echo "rc=$?"
echo "== verify_env.py --gpu"; (cd pinned/h200 && env -u PYTHONPATH python3 verify_env.py --gpu); echo "rc=$?"
echo "== pinner verify --python (another interpreter's environment)"
pinner verify --target h200 --gpu --python "$(env -u PYTHONPATH python3 -c 'import sys; print(sys.executable)')"; echo "rc=$?"
