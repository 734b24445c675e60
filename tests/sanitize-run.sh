#!/bin/sh
# sanitize-run.sh CMD... — run one test of the sanitizer pass (tests/
# CMakeLists.txt, VD_SANITIZE_BUILDDIR). A report of AddressSanitizer,
# LeakSanitizer or UndefinedBehaviorSanitizer from any process the test
# starts (unit test, daemon, vd-img) fails the test, also one the test
# itself would not see, such as a daemon's report in its log.
set -u
dir=$(mktemp -d "${TMPDIR:-/tmp}/vd-san.XXXXXX") || exit 1
export ASAN_OPTIONS="log_path=$dir/report:detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="log_path=$dir/report:print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
"$@"
rc=$?
for f in "$dir"/report.*; do
    [ -e "$f" ] || continue
    echo "---- sanitizer report $f ----" >&2
    cat "$f" >&2
    rc=1
done
rm -rf "$dir"
exit $rc
