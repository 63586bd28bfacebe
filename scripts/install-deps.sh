#!/usr/bin/env bash
# Installs what vmssd needs to build and test, and only what is missing: a machine that has
# everything is left untouched and no package index is fetched.
set -euo pipefail

debian_packages=(
    libnghttp2-dev
    libprotobuf-c-dev
    protobuf-c-compiler
    protobuf-compiler
    libmicrohttpd-dev
    golang-go
    golang-google-grpc-dev
    golang-goprotobuf-dev
)

# Python module to import -> PyPI distribution that provides it.
python_modules=(
    "grpc:grpcio"
    "grpc_tools:grpcio-tools"
    "grpc_reflection:grpcio-reflection"
    "pytest:pytest"
    "prometheus_client:prometheus_client"
    "yaml:pyyaml"
    "h2:h2"
)

missing_debian=()
for package in "${debian_packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing_debian+=("$package")
    fi
done

missing_python=()
for entry in "${python_modules[@]}"; do
    module=${entry%%:*}
    distribution=${entry#*:}
    if ! python3 -c "import $module" >/dev/null 2>&1; then
        missing_python+=("$distribution")
    fi
done

if ((${#missing_debian[@]} == 0 && ${#missing_python[@]} == 0)); then
    echo "deps: all Debian and Python dependencies are present; nothing to install"
    exit 0
fi

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
    sudo_cmd=(sudo)
fi

if ((${#missing_debian[@]} > 0)); then
    echo "deps: installing Debian packages: ${missing_debian[*]}"
    "${sudo_cmd[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y --no-install-recommends \
        "${missing_debian[@]}"
fi

if ((${#missing_python[@]} > 0)); then
    echo "deps: installing Python packages: ${missing_python[*]}"
    # Debian marks its Python as externally managed; these are test tools, not system packages.
    python3 -m pip install --break-system-packages "${missing_python[@]}" \
        || python3 -m pip install "${missing_python[@]}"
fi
echo "deps: done"
