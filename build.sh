#!/usr/bin/env bash
# build.sh — build, run, test and benchmark provision.
#
#   ./build.sh          build bin/provisiond, bin/provctl and bin/plugins/<name>
#   ./build.sh run      build, install the plugins into ./data/plugins and run
#                       provisiond in the foreground with --base-root ./data
#   ./build.sh test     install the Debian packages the tests need, then gofmt
#                       check, go vet and go test -race over the whole module
#   ./build.sh bench    run the benchmarks listed in README.rst
#   ./build.sh fuzz     run every Go fuzz target for FUZZTIME each (default
#                       30s); their seed corpora already run in ./build.sh test
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

# Debian packages the test suite needs (real tools, not mocks).
TEST_DEBS=(ipmitool)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

build() {
	mkdir -p bin/plugins
	if [[ -d server/cmd/provisiond ]]; then
		log "building bin/provisiond"
		go build -o bin/provisiond ./server/cmd/provisiond
	else
		log "skipping bin/provisiond: ./server/cmd/provisiond does not exist yet"
	fi
	if [[ -d tools/provctl ]]; then
		log "building bin/provctl"
		go build -o bin/provctl ./tools/provctl
	fi
	local dirs dir
	if [[ -d plugins ]]; then
		dirs=$(go list -f '{{if eq .Name "main"}}{{.Dir}}{{end}}' ./plugins/...)
		for dir in $dirs; do
			log "building bin/plugins/$(basename "$dir")"
			go build -o "bin/plugins/$(basename "$dir")" "$dir"
		done
	fi
}

run() {
	build
	[[ -x bin/provisiond ]] || die "bin/provisiond was not built (./server/cmd/provisiond is missing)"
	mkdir -p data/plugins
	if compgen -G 'bin/plugins/*' >/dev/null; then
		cp -f bin/plugins/* data/plugins/
	fi
	cat >&2 <<EOF
==> starting provisiond with --base-root ./data (Ctrl-C to stop)
    The admin user is 'rocketskates'; unless --admin-password / RS_ADMIN_PASSWORD
    is given, its generated password is written to ./data/admin-password on first start.
    Try:
      curl -k -u rocketskates:\$(cat data/admin-password) https://127.0.0.1:8092/api/v3/info
      RS_PASSWORD=\$(cat data/admin-password) bin/provctl info
EOF
	# An absolute path: provisiond runs plugins from other working directories.
	exec bin/provisiond --base-root "$PWD/data"
}

ensure_test_debs() {
	local missing=() pkg
	for pkg in "${TEST_DEBS[@]}"; do
		if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
			missing+=("$pkg")
		fi
	done
	((${#missing[@]} == 0)) && return 0
	if [[ $(id -u) -eq 0 && -f /etc/debian_version ]] && command -v apt-get >/dev/null; then
		log "installing Debian packages needed by the tests: ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	else
		die "the tests need these Debian packages, please install them: ${missing[*]}"
	fi
}

run_tests() {
	ensure_test_debs
	log "gofmt check"
	local unformatted files=()
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		local f
		while IFS= read -r f; do
			[[ -f $f ]] && files+=("$f")
		done < <(git ls-files -co --exclude-standard -- '*.go')
	else
		mapfile -t files < <(find . -name '*.go' -not -path './data/*' -not -path './bin/*')
	fi
	unformatted=""
	if ((${#files[@]} > 0)); then
		unformatted=$(gofmt -l "${files[@]}")
	fi
	if [[ -n $unformatted ]]; then
		printf 'build.sh: these files are not gofmt-formatted:\n%s\n' "$unformatted" >&2
		exit 1
	fi
	log "go vet ./..."
	go vet ./...
	log "go test -race -count=1 -timeout 8m ./..."
	go test -race -count=1 -timeout 8m ./...
}

# The benchmarks documented in README.rst ("Benchmarks"). Each entry is
# "<package> <benchmark regexp> [extra go test flags]"; every benchmark is
# paired in its package with a floor measured in the same run, so README
# reports ratios rather than absolute numbers.
BENCHES=(
	"./server/api BenchmarkHTTPS|BenchmarkInProcess|BenchmarkServiceGet|BenchmarkStoreRead|BenchmarkEventsPost"
	"./server/events BenchmarkFanout -count=3"
	"./server/store BenchmarkStoreWrite32"
	"./server/objects BenchmarkObjects"
	"./server/pluginhost/hostmodule BenchmarkPluginActions"
	"./server/pluginhost/hostmodule BenchmarkPluginColdStart -benchtime=3x"
	"./plugins/ipmi/internal/bulk BenchmarkPowerStatus100BMCs -benchtime=3x"
	"./client BenchmarkClient|BenchmarkE2E"
)

run_benches() {
	local entry pkg re extra out
	out=$(mktemp)
	trap 'rm -f "$out"' RETURN
	for entry in "${BENCHES[@]}"; do
		read -r pkg re extra <<<"$entry"
		if [[ ! -d $pkg ]]; then
			log "skipping $pkg: package does not exist"
			continue
		fi
		log "go test -run '^$' -bench '$re' -benchmem ${extra:-} $pkg"
		# shellcheck disable=SC2086 # extra holds zero or more flags
		go test -run '^$' -bench "$re" -benchmem ${extra:-} "$pkg" | tee -a "$out"
	done
	# One table at the end: figure, floor, ours, ratio, goal
	# (tools/benchsummary/figures.go lists the figures).
	log "summary"
	go run ./tools/benchsummary <"$out"
}

# run_fuzz finds every Fuzz* target in the module (go test -list) and runs
# each alone for FUZZTIME (go test -fuzz takes one target at a time). A
# crasher is written by go test under the package's testdata/fuzz/, where
# it becomes part of the seed corpus that ./build.sh test replays.
run_fuzz() {
	local fuzztime=${FUZZTIME:-30s} pkg line target failed=0 ran=0
	for pkg in $(go list ./...); do
		while IFS= read -r line; do
			[[ $line == Fuzz* ]] || continue
			target=$line
			log "go test -run '^\$' -fuzz '^$target\$' -fuzztime $fuzztime $pkg"
			ran=$((ran + 1))
			if ! go test -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" "$pkg"; then
				failed=$((failed + 1))
			fi
		done < <(go test -list '^Fuzz' "$pkg" 2>/dev/null)
	done
	log "fuzz: $ran targets, $failed failed"
	((failed == 0))
}

case "${1:-}" in
"") build ;;
run) run ;;
test) run_tests ;;
bench) run_benches ;;
fuzz) run_fuzz ;;
*) die "unknown command '$1' (use: run, test, bench, fuzz, or nothing to build)" ;;
esac
