#!/bin/sh
# test-modules.sh GO MODULE_DIR... runs `go test ./...` in every module, one
# after another, except the sqs-dispatcher's, which runs beside them from the
# start: its tests mostly wait for real retries and visibility timeouts (4.5
# of make test's 15 minutes on 2 CPUs) rather than compute. Its output is
# printed when it ends. The status is non-zero if any module failed; the
# other modules stop at the first failure, as before.
set -u
go=$1
shift

beside=
for m in "$@"; do
	case $m in */services/sqs-dispatcher) beside=$m ;; esac
done
log=$(mktemp)
status=$(mktemp)
trap 'rm -f "$log" "$status"' EXIT
if [ -n "$beside" ]; then
	echo "== ${beside#"$PWD"/} (started now, runs beside the others; its output follows theirs)"
	(cd "$beside" && "$go" test -count=1 -timeout 20m ./... >"$log" 2>&1; echo $? >"$status") &
	pid=$!
fi

failed=0
for m in "$@"; do
	[ "$m" = "$beside" ] && continue
	echo "== ${m#"$PWD"/}"
	if ! (cd "$m" && "$go" test -count=1 -timeout 20m ./...); then
		failed=1
		break
	fi
done

if [ -n "$beside" ]; then
	wait "$pid"
	echo "== ${beside#"$PWD"/}"
	cat "$log"
	[ "$(cat "$status")" = 0 ] || failed=1
fi
exit "$failed"
