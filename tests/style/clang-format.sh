# Every C source and header is formatted as .clang-format says. A file
# that is not fails the test with the diff clang-format would apply.
# Reformat with: clang-format -i $(git ls-files '*.c' '*.h')
set -u
cd "${VD_SRCDIR:?}" || exit 1
command -v clang-format >/dev/null || { echo "FAIL: clang-format is required"; exit 1; }
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    files=$(git ls-files '*.c' '*.h')
else
    files=$(find api daemon formats schema tests -name '*.[ch]')
fi
[ -n "$files" ] || { echo "FAIL: no sources found"; exit 1; }
bad=0
for f in $files; do
    if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
        echo "not formatted: $f"
        clang-format "$f" | diff -u "$f" - | head -20
        bad=$((bad + 1))
    fi
done
n=$(echo "$files" | wc -w)
echo "$((n - bad)) of $n files formatted"
[ "$bad" -eq 0 ]
