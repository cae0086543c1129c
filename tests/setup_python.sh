#!/usr/bin/env bash
# Installs the Python packages the test suite reads data from: onnx (whose
# wheel ships the ONNX backend node tests that tests/conformance runs) and
# numpy. Idempotent: does nothing when the right versions are present.
# Called by .ci/run before `make test`.
set -euo pipefail

ONNX_VERSION=1.22.0
PYTHON=${PYTHON:-python3}

have_packages() {
  "$PYTHON" - "$ONNX_VERSION" <<'PY' >/dev/null 2>&1
import sys
import numpy  # noqa: F401
import onnx
sys.exit(0 if onnx.__version__ == sys.argv[1] else 1)
PY
}

if have_packages; then
  echo "onnx==$ONNX_VERSION and numpy already installed"
else
  # Root (as in CI) installs directly; otherwise use sudo only where the
  # interpreter's site-packages are not ours to write (a system Python).
  SUDO=""
  site=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  if [ "$(id -u)" -ne 0 ] && [ ! -w "$site" ]; then SUDO=$(command -v sudo || true); fi
  pip_install() { $SUDO "$PYTHON" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "$@"; }
  # Debian's Python is "externally managed" (PEP 668): pip refuses unless told
  # to go ahead, so retry with the flag only when pip asks for it.
  if ! out=$(pip_install "onnx==$ONNX_VERSION" numpy 2>&1); then
    if grep -q externally-managed <<<"$out"; then
      pip_install --break-system-packages "onnx==$ONNX_VERSION" numpy
    else
      echo "$out" >&2
      exit 1
    fi
  fi
  have_packages || { echo "onnx==$ONNX_VERSION still not importable by $PYTHON" >&2; exit 1; }
fi

"$PYTHON" -c 'import onnx, os; d = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "node"); print("ONNX node tests:", d, len(os.listdir(d)), "tests")'
