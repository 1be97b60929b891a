# Sourced by the scripts that build pinned binaries from the Go module proxy
# into the cache (hack/build-kube-bins.sh, hack/build-node-bins.sh).
#
# kuryr_cache: the cache directory (KURYR_CACHE, else /var/cache/kuryr-dpdk
# when writable, else ~/.cache/kuryr-dpdk).
kuryr_cache() {
	if [[ -n "${KURYR_CACHE:-}" ]]; then
		echo "$KURYR_CACHE"
	elif [[ -w /var/cache ]]; then
		echo /var/cache/kuryr-dpdk
	else
		echo "$HOME/.cache/kuryr-dpdk"
	fi
}

# kube_ldflags VERSION: the -ldflags that stamp a Kubernetes binary's version
# the way the release tooling does (without them kubectl version and /version
# report v0.0.0-master).
kube_ldflags() {
	local version=$1 minor flags="-s -w" v
	minor="${version#v1.}"
	minor="${minor%%.*}"
	for v in "k8s.io/component-base/version" "k8s.io/client-go/pkg/version"; do
		flags+=" -X $v.gitVersion=${version} -X $v.gitMajor=1 -X $v.gitMinor=${minor}"
		flags+=" -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z"
	done
	echo "$flags"
}

# go_build_cached TAG BINDIR NAME MODULE_DIR PACKAGE LDFLAGS: builds PACKAGE
# (CGO_ENABLED=0, in MODULE_DIR's module) to BINDIR/NAME unless it is there.
# Progress goes to stderr prefixed with TAG, every 30 s while the build runs.
# The binary is built under a temporary name and renamed, so an interrupted
# build never looks cached.
go_build_cached() {
	local tag=$1 bindir=$2 name=$3 dir=$4 pkg=$5 ldflags=$6
	if [[ -x "$bindir/$name" ]]; then
		_gobuild_log "$tag" "$name: cached at $bindir/$name"
		return
	fi
	_gobuild_log "$tag" "$name: building $pkg (slow the first time; progress every 30 s)"
	local start=$SECONDS
	(while sleep 30; do _gobuild_log "$tag" "$name: still building ($((SECONDS - start)) s)"; done) &
	local ticker=$!
	if ! (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags="$ldflags" -o "$bindir/.$name.tmp" "$pkg"); then
		kill "$ticker" 2>/dev/null || true
		rm -f "$bindir/.$name.tmp"
		_gobuild_log "$tag" "$name: build failed"
		return 1
	fi
	kill "$ticker" 2>/dev/null || true
	mv "$bindir/.$name.tmp" "$bindir/$name"
	_gobuild_log "$tag" "$name: built in $((SECONDS - start)) s"
}

_gobuild_log() {
	local tag=$1
	shift
	printf '[%s %s] %s\n' "$tag" "$(date +%H:%M:%S)" "$*" >&2
}
