#!/usr/bin/env bash
# The sentence-transformers baseline (shared/reference/bench_st.py) in a cached, pinned environment.
#
#   bash bench/st_env.sh install                  # create the environment (once; later calls: < 1 s)
#   bash bench/st_env.sh run MODEL_DIR [args...]  # bench_st.py --model-dir MODEL_DIR --threads 2 args...
#   bash bench/st_env.sh python [args...]         # that environment's python (offline, 2 threads)
#   bash bench/st_env.sh clean                    # remove it
#
# e.g. bash bench/st_env.sh run .cache/models-src/all-MiniLM-L6-v2 --repeats 3
#
# The environment is a venv under $DOCCHAT_CACHE/bench-st/ (default .cache/bench-st/) holding the
# versions the reference embeddings and baselines were made with: sentence-transformers 6.2.0,
# transformers 5.23.0, torch 2.15.0 (the PyPI wheel, 2.15.0+cu132), numpy 2.4.6, tokenizers 0.23.3.
# Every package is pinned to the version pip resolves for the full install and installed --no-deps,
# so nothing else is fetched. A marker holding the hash of the pins, the mode and the python version
# makes later calls instant (< 1 s); a change of any of them rebuilds from scratch.
#
# CUDA libraries. PyPI has only the CUDA build of torch for Linux x86_64, and its shared objects
# link (DT_NEEDED) against cudart, cublas(Lt), cudnn, cufft, cusparse(Lt), cusolver, nccl, nvshmem,
# nvrtc, cupti and cufile, so `import torch` fails without them even on CPU. Two modes
# (DOCCHAT_ST_CUDA):
#   stub (default)  build tiny stub libraries with those sonames, symbols and symbol versions (every
#                   function returns cudaErrorNoDevice) into site-packages/nvidia/cu13/lib, which is
#                   in torch's RPATH. Needs cc + readelf + ldd (build-essential). torch then reports
#                   no CUDA device; the CPU kernels (libtorch_cpu.so) are the same, and embeddings
#                   are bit-identical to the real install. 0.64 GB download, 1.5 GB on disk,
#                   ≈ 80 s cold install on 2 busy cores.
#                   Falls back to `wheels` when the stubs cannot be built or torch will not load.
#   wheels          the real nvidia wheels torch's load needs (not triton, cusolver, cuda-bindings,
#                   cuda-toolkit, cccl, nvtx: the CPU path never loads them). 2.56 GB download
#                   instead of the 2.9 GB of a plain `pip install sentence-transformers torch`,
#                   4.2 GB on disk, ≈ 2 min cold install.
#
# Environment: DOCCHAT_CACHE (default $REPO/.cache), DOCCHAT_SHARED (default $REPO/../shared),
# DOCCHAT_PYTHON (default python3; the reference used 3.11.7), DOCCHAT_ST_CUDA (stub | wheels).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${DOCCHAT_CACHE:-$REPO/.cache}
SHARED=${DOCCHAT_SHARED:-$REPO/../shared}
PY=${DOCCHAT_PYTHON:-python3}
DIR=$CACHE/bench-st
VENV=$DIR/venv
MARKER=$DIR/.installed
BENCH=$SHARED/reference/bench_st.py
MODE=${DOCCHAT_ST_CUDA:-stub}
[[ $MODE == stub || $MODE == wheels ]] || { echo "st_env: DOCCHAT_ST_CUDA must be stub or wheels" >&2; exit 2; }

# torch and the pure-python packages it imports.
TORCH_PKGS=(
  torch==2.15.0
  filelock==4.2.12 typing-extensions==4.16.0 setuptools==84.2.1 sympy==1.14.0 mpmath==1.3.0
  networkx==3.6.1 jinja2==3.1.6 markupsafe==3.0.4 fsspec==2026.9.0
)
# The CUDA libraries torch's shared objects need at load time (mode `wheels`).
CUDA_PKGS=(
  nvidia-cuda-runtime==13.2.86 nvidia-cublas==13.4.1.3 nvidia-cudnn-cu13==9.26.0.51
  nvidia-cufft==12.2.0.57 nvidia-cusparse==12.7.10.12 nvidia-nvjitlink==13.5.37
  nvidia-cusparselt-cu13==0.8.1 nvidia-nccl-cu13==2.30.7 nvidia-nvshmem-cu13==3.7.2
  nvidia-cuda-nvrtc==13.2.86 nvidia-cuda-cupti==13.2.86 nvidia-cufile==1.17.1.22
)
# sentence-transformers, transformers and their whole dependency closure.
ST_PKGS=(
  sentence-transformers==6.2.0 transformers==5.23.0 tokenizers==0.23.3 huggingface-hub==2.4.0
  safetensors==0.8.0 numpy==2.4.6 scipy==1.17.1 scikit-learn==1.9.1 joblib==1.6.0
  threadpoolctl==3.8.0 tqdm==4.70.1 regex==2026.11.15 packaging==26.3 pyyaml==6.0.3
  hf-xet==1.8.0 httpx2==2.16.2 httpcore2==2.16.2 h11==0.16.0 anyio==4.16.0 idna==3.20
  truststore==0.10.5 typer==0.29.2 click==8.5.1 rich==15.0.0 pygments==2.21.0
  markdown-it-py==4.3.0 mdurl==0.1.2 shellingham==1.5.4 annotated-doc==0.0.7
  pydantic==2.14.3 pydantic-core==2.50.4 annotated-types==0.8.0 typing-inspection==0.4.5
  narwhals==2.29.0 cloudpickle==3.1.2
)

offline_env() {
  export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
  export HF_HOME=$DIR/hf TOKENIZERS_PARALLELISM=false
  export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2
}

want() { # what the marker must hold for the environment to be current
  { "$PY" -c 'import sys; print(sys.version)'; printf '%s\n' "$MODE" "${TORCH_PKGS[@]}" "${CUDA_PKGS[@]}" "${ST_PKGS[@]}"; } \
    | sha256sum | cut -d' ' -f1
}

# Stub libraries for every library torch's shared objects need that is not there: the sonames,
# the symbols torch imports from each (with their symbol versions), functions returning 100
# (cudaErrorNoDevice) and *ErrorString/*StatusString returning a message.
make_stubs() { # SITE_PACKAGES
  "$VENV/bin/python" - "$1/torch" "$1/nvidia/cu13/lib" "${CC:-cc}" <<'PY'
import collections, glob, os, re, shlex, subprocess, sys, tempfile
torch_dir, out, cc = sys.argv[1], sys.argv[2], shlex.split(sys.argv[3])
sos = glob.glob(os.path.join(torch_dir, "lib", "*.so*")) + glob.glob(os.path.join(torch_dir, "_C*.so"))
run = lambda *a: subprocess.run(a, capture_output=True, text=True, check=True).stdout
missing = set()
for so in sos:
    missing |= set(re.findall(r"^\s*(\S+) => not found", run("ldd", so), re.M))
missing.discard("libcuda.so.1")  # the driver: only libcaffe2_nvrtc.so needs it, dlopened on CUDA use
PREFIX = {"cusparseLt": "libcusparseLt.so.0", "nccl": "libnccl.so.2", "pnccl": "libnccl.so.2",
          "nvshmem": "libnvshmem_host.so.3", "cuFile": "libcufile.so.0", "cupti": "libcupti.so.13"}
syms = collections.defaultdict(dict)  # soname -> symbol -> (type, version)
for so in sos:
    ver2file, cur = {}, None
    for line in run("readelf", "-V", "-W", so).splitlines():
        m = re.search(r"File: (\S+)", line)
        if m: cur = m.group(1); continue
        m = re.search(r"Name: (\S+)", line)
        if m and cur: ver2file[m.group(1)] = cur
    for line in run("readelf", "--dyn-syms", "-W", so).splitlines():
        f = line.split()
        if len(f) < 8 or f[6] != "UND": continue
        name, kind = f[7], f[3]
        if "@" in name:
            sym, ver = name.split("@", 1)
            lib = ver2file.get(ver)
            if lib in missing: syms[lib][sym] = (kind, ver)
        else:
            lib = next((l for p, l in PREFIX.items() if name.startswith(p)), None)
            if lib in missing: syms[lib][name] = (kind, None)
os.makedirs(out, exist_ok=True)
with tempfile.TemporaryDirectory() as tmp:
    for lib in sorted(missing):
        src = ['static const char msg[] = "CUDA stub: this torch install is CPU-only";']
        vers = collections.defaultdict(list); vers[lib]
        for n, (kind, ver) in sorted(syms[lib].items()):
            vers[ver or lib].append(n)
            if kind == "OBJECT": src.append(f"char {n}[64];")
            elif re.search(r"(Error|Status)(String|Name)$", n): src.append(f"const char *{n}(void) {{ return msg; }}")
            else: src.append(f"int {n}(void) {{ return 100; }}")
        c, vmap = os.path.join(tmp, lib + ".c"), os.path.join(tmp, lib + ".map")
        open(c, "w").write("\n".join(src) + "\n")
        open(vmap, "w").write("".join(f"{v} {{ global: {' '.join(n + ';' for n in ns) or '*;'} }};\n"
                                      for v, ns in vers.items()))
        subprocess.run([*cc, "-shared", "-fPIC", "-w", "-o", os.path.join(out, lib), c,
                        f"-Wl,-soname,{lib}", f"-Wl,--version-script={vmap}"], check=True)
print(f"st_env: {len(missing)} stub libraries ({sum(len(syms[l]) for l in missing)} symbols) in {out}")
PY
}

self_test() {
  ( offline_env; "$VENV/bin/python" - <<'PY'
import torch, sentence_transformers, transformers
x = torch.randn(8, 16); assert torch.allclose((x @ x.T).diag(), (x * x).sum(1), atol=1e-4)
print(f"st_env: torch {torch.__version__} (CUDA device: {torch.cuda.is_available()}), "
      f"sentence-transformers {sentence_transformers.__version__}, transformers {transformers.__version__}: "
      "imports and runs on CPU")
PY
  )
}

ensure() {
  local want_hash; want_hash=$(want)
  [[ -f $MARKER && $(cat "$MARKER") == "$want_hash" && -x $VENV/bin/python ]] && return 0
  mkdir -p "$DIR"
  exec 9>"$DIR/.lock"
  flock 9  # a second caller waits here, then finds the marker
  if [[ -f $MARKER && $(cat "$MARKER") == "$want_hash" && -x $VENV/bin/python ]]; then
    exec 9>&-; return 0
  fi
  local t0=$SECONDS
  echo "st_env: creating $VENV (mode $MODE; a few minutes)" >&2
  rm -rf "$VENV" "$MARKER"
  "$PY" -m venv "$VENV"
  # --no-compile: byte-compiling all of torch, scipy, transformers costs ~1 min of CPU; the
  # modules actually imported get compiled (once) on first use instead.
  local pip=("$VENV/bin/python" -m pip install --no-deps --only-binary=:all: --no-cache-dir
             --disable-pip-version-check --progress-bar off -q --no-compile)
  "${pip[@]}" "${TORCH_PKGS[@]}" "${ST_PKGS[@]}"
  local site; site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  local ok=0
  if [[ $MODE == stub ]]; then
    if make_stubs "$site" >&2 && self_test; then ok=1
    else echo "st_env: the stub libraries did not work; installing the nvidia wheels instead" >&2
         rm -rf "$site/nvidia"; fi
  fi
  if [[ $ok == 0 ]]; then "${pip[@]}" "${CUDA_PKGS[@]}"; self_test; fi
  echo "$want_hash" >"$MARKER"
  echo "st_env: ready in $((SECONDS - t0)) s, $(du -sh "$VENV" | cut -f1) on disk" >&2
  exec 9>&-
}

cmd=${1:-}
case $cmd in
  install) ensure ;;
  run)
    shift
    [[ $# -ge 1 ]] || { echo "usage: $0 run MODEL_DIR [bench_st.py args...]" >&2; exit 2; }
    model=$1; shift
    [[ -f $model/modules.json ]] || { echo "st_env: $model is not a sentence-transformers directory (no modules.json)" >&2; exit 2; }
    [[ -f $BENCH ]] || { echo "st_env: $BENCH not found (set DOCCHAT_SHARED)" >&2; exit 2; }
    ensure
    offline_env
    exec "$VENV/bin/python" "$BENCH" --model-dir "$model" --threads 2 "$@" ;;
  python)
    shift; ensure; offline_env
    exec "$VENV/bin/python" "$@" ;;
  clean) rm -rf "$DIR" ;;
  *) sed -n '2,10p' "$0" >&2; exit 2 ;;
esac
