#!/usr/bin/env bash
# One prepared check of fcam on a CUDA machine (issue #16): the CUDA tests, the throughputs that
# size the paper preset, F-CAM's inference latency beside the paper's, a tiny paper-geometry
# pipeline end to end, and the projected wall time of the paper preset on this card.
#
#   benchmarks/gpu_check.sh --device cuda --out "$OUT"            # on the GPU machine (~8 min)
#   benchmarks/gpu_check.sh --device cpu --quick --out /tmp/gpu   # rehearsal on a CPU (a few min)
#
# Options:
#   --device cuda|cpu   where the networks run (default cuda)
#   --out DIR           where every step writes its files (default gpu_check_out)
#   --quick             small sizes (64 px, batch 4, ResNet50 only, one CAM method, small CRF)
#   --steps a,b,...     run only these steps (default: all, in this order):
#                       env pytest_gpu train crf inference cams host project report e2e
#   --budget SECONDS    wall-clock budget of the whole script (default 480); each step's time limit
#                       is cut to what is left, and a step with under 20 s left is skipped
#
# Every step runs under `timeout`, logs to DIR/logs/<step>.log and records its exit status and
# wall time in DIR/steps/<step>.json; a failed step does not stop the others. DIR/gpu_check.json
# (benchmarks/gpu_report.py) merges everything; it is rewritten after the measurements and again at
# the end, so a run cut short still leaves its results. The script exits 0 unless its arguments
# are wrong: read the report for failures. PYTHON (default: python3 on PATH) is the interpreter with
# fcam's dependencies; this checkout's fcam is put first on PYTHONPATH.
set -uo pipefail

DEVICE=cuda
OUT=gpu_check_out
QUICK=0
STEPS="env pytest_gpu train crf inference cams host project report e2e"
BUDGET=480

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE="${2:?--device needs a value}"; shift 2 ;;
        --out) OUT="${2:?--out needs a value}"; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --steps) STEPS="${2//,/ }"; shift 2 ;;
        --budget) BUDGET="${2:?--budget needs a value}"; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "gpu_check.sh: unknown argument $1" >&2; usage 2 ;;
    esac
done
case "$DEVICE" in cpu|cuda|cuda:[0-9]*) ;; *) echo "gpu_check.sh: --device must be cpu or cuda" >&2; exit 2 ;; esac
case "$BUDGET" in ''|*[!0-9]*) echo "gpu_check.sh: --budget must be whole seconds" >&2; exit 2 ;; esac

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$(command -v python3)}"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT/logs" "$OUT/steps"
OUT="$(cd "$OUT" && pwd)"
cd "$REPO" || exit 2
START=$SECONDS

if [ "$QUICK" = 1 ]; then
    SIZE=64; BATCH=4; BACKBONES="resnet50"; METHODS="cam gradcam"; REPEATS=1; WARMUP=1
    CRF_ARGS=(--batch 2 --size 64 --scales 1.0 --repeat 1 --warmup 0)
    HOST_ARGS=(--images 4 --maps 8 --batch 4 --repeats 1 --warmup 0)
    PROJECT_SET=(--set "backbones={resnet50: {classifier: {}, decoder: {}}}" --set "methods=[cam, gradcam]")
else
    SIZE=224; BATCH=32; BACKBONES="vgg16 inceptionv3 resnet50"
    METHODS="cam gradcam gradcampp smoothgradcampp xgradcam layercam"; REPEATS=5; WARMUP=2
    CRF_ARGS=(--batch 32 --size 224 --scales 1.0 0.5 --repeat 3 --warmup 1)
    HOST_ARGS=(--images 64 --maps 128 --batch 32 --repeats 3 --warmup 1 --threads 8)
    PROJECT_SET=()
fi
# shellcheck disable=SC2206
BACKBONE_ARGS=($BACKBONES); METHOD_ARGS=($METHODS)

wanted() { case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# run_step NAME CAP_SECONDS COMMAND...: run under timeout (CAP cut to the budget left), record the outcome.
run_step() {
    local name=$1 cap=$2; shift 2
    wanted "$name" || return 0
    local left=$((BUDGET - (SECONDS - START) - 15)) limit status rc t0
    limit=$((cap < left ? cap : left))
    if [ "$limit" -lt 20 ]; then
        status=skipped; rc=null; t0=$SECONDS
        echo "== $name: skipped, ${left}s of the budget left (rerun with --steps $name)"
    else
        echo "== $name (limit ${limit}s): $*"
        t0=$SECONDS
        timeout --kill-after=10 "$limit" "$@" >"$OUT/logs/$name.log" 2>&1
        rc=$?
        case $rc in 0) status=ok ;; 124|137) status=timeout ;; *) status=failed ;; esac
        echo "   $status (rc $rc) in $((SECONDS - t0))s; log: $OUT/logs/$name.log"
        [ "$status" = ok ] || tail -n 5 "$OUT/logs/$name.log" | sed 's/^/   | /'
    fi
    printf '{"step": "%s", "status": "%s", "rc": %s, "seconds": %s, "limit_s": %s}\n' \
        "$name" "$status" "$rc" "$((SECONDS - t0))" "$limit" >"$OUT/steps/$name.json"
}

report() {
    "$PY" benchmarks/gpu_report.py merge "$OUT" >"$OUT/report.txt" 2>"$OUT/logs/report.log" \
        || echo "   gpu_report.py failed: see $OUT/logs/report.log"
}

common=(--device "$DEVICE")
run_step env 60 "$PY" benchmarks/gpu_report.py env "$OUT"
run_step pytest_gpu 150 "$PY" -m pytest -m gpu -q -p no:cacheprovider --junitxml "$OUT/pytest_gpu.xml"
run_step train 150 "$PY" benchmarks/train.py "${common[@]}" --size "$SIZE" --batch "$BATCH" \
    --backbones "${BACKBONE_ARGS[@]}" --repeats "$REPEATS" --warmup "$WARMUP" --json "$OUT/train.json"
run_step crf 90 "$PY" benchmarks/crf.py "${common[@]}" "${CRF_ARGS[@]}" --json "$OUT/crf.json"
run_step inference 90 "$PY" benchmarks/inference.py "${common[@]}" --size "$SIZE" --batches 1 "$BATCH" \
    --backbones "${BACKBONE_ARGS[@]}" --repeats "$((REPEATS * 4))" --warmup "$((WARMUP * 2))" \
    --json "$OUT/inference.json"
run_step cams 120 "$PY" benchmarks/cams.py "${common[@]}" --size "$SIZE" --batch "$BATCH" \
    --backbones "${BACKBONE_ARGS[@]}" --methods "${METHOD_ARGS[@]}" --modes batched \
    --repeats "$REPEATS" --warmup "$WARMUP" --json "$OUT/cams.json"
run_step host 90 "$PY" benchmarks/host.py "${HOST_ARGS[@]}" --json "$OUT/host.json"
project_args=(--train "$OUT/train.json")
for part in cams inference host crf; do
    [ -f "$OUT/$part.json" ] && project_args+=(--"$part" "$OUT/$part.json")
done
if [ -f "$OUT/train.json" ]; then
    run_step project 60 "$PY" benchmarks/project_paper.py "${project_args[@]}" "${PROJECT_SET[@]}" \
        --json "$OUT/projection.json"
elif wanted project; then
    echo "== project: skipped, no train.json"
    printf '{"step": "project", "status": "skipped", "rc": null, "seconds": 0, "limit_s": 0}\n' \
        >"$OUT/steps/project.json"
fi
wanted report && report

# The paper preset end to end (tests/e2e/test_paper_preset.py, branch h-paper-e2e): last, because
# it takes whatever budget is left; with device: auto its network jobs run on the GPU if there is one.
if wanted e2e; then
    if [ -f tests/e2e/test_paper_preset.py ]; then
        run_step e2e 600 "$PY" -m pytest -m slow -q -p no:cacheprovider tests/e2e/test_paper_preset.py \
            --junitxml "$OUT/e2e.xml"
    else
        echo "== e2e: tests/e2e/test_paper_preset.py is not present in this checkout"
        printf '{"step": "e2e", "status": "not present", "rc": null, "seconds": 0, "limit_s": 0}\n' \
            >"$OUT/steps/e2e.json"
    fi
    wanted report && report
fi
[ -f "$OUT/report.txt" ] && cat "$OUT/report.txt"
echo "gpu_check.sh: $((SECONDS - START))s; everything in $OUT (gpu_check.json, report.txt, logs/)"
exit 0
