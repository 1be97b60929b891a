# Sourced by the project's install scripts.
#
# apt_ensure NAME PKG...: installs whichever PKGs are missing with apt-get
# (apt-get update first), with no service started by their postinst scripts
# (the tests start their own servers on 127.0.0.1), and says what it did on
# stderr prefixed with NAME. Quiet and well under a second when everything is
# installed. Returns 1, with a message, when packages are missing and this is
# not root.
apt_ensure() {
	local name=$1
	shift
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	if ((${#missing[@]} == 0)); then
		return 0
	fi
	if [[ $(id -u) -ne 0 ]]; then
		echo "$name: missing Debian packages: ${missing[*]}; run this as root (it runs apt-get install)" >&2
		return 1
	fi
	# A policy-rc.d that says no keeps services from starting during the
	# install, unless the machine already has one.
	local policy=/usr/sbin/policy-rc.d own=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\n# %s: no service starts during install\nexit 101\n' "$name" >"$policy"
		chmod 0755 "$policy"
		own=1
	fi
	local start=$SECONDS rc=0
	echo "$name: missing: ${missing[*]}; apt-get update" >&2
	DEBIAN_FRONTEND=noninteractive apt-get update -qq || rc=$?
	if ((rc == 0)); then
		echo "$name: apt-get install ${missing[*]}" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
			"${missing[@]}" >/dev/null || rc=$?
	fi
	((own)) && rm -f "$policy"
	if ((rc != 0)); then
		echo "$name: apt-get failed ($rc)" >&2
		return "$rc"
	fi
	echo "$name: installed ${missing[*]} in $((SECONDS - start)) s" >&2
}
