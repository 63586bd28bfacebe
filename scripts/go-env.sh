# Sourced by the Makefile's Go recipes and by scripts: GOPATH mode with the Debian Go packages,
# the repository visible as import path "vmssd", and no module downloads of any kind.
# Usage: source scripts/go-env.sh   (from anywhere; it finds the repository from its own path)

vmssd_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$vmssd_root/.build/gopath/src"
if [[ ! -L "$vmssd_root/.build/gopath/src/vmssd" ]]; then
    ln -sfn "$vmssd_root" "$vmssd_root/.build/gopath/src/vmssd"
fi
export GOPATH="$vmssd_root/.build/gopath:/usr/share/gocode"
export GO111MODULE=off
export GOPROXY=off
export GOFLAGS=
# Go resolves imports under GOPATH/src only when the working directory is inside it.
export VMSSD_GO_SRC="$vmssd_root/.build/gopath/src/vmssd"
