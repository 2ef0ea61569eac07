# Sourced by the benchmark drivers: replace_section FILE NAME CONTENT_FILE replaces what
# lies between "<!-- NAME:begin -->" and "<!-- NAME:end -->" in FILE (appending the markers
# if missing), leaving the rest of the file alone.
replace_section() {
  local file="$1" name="$2" content="$3"
  local begin="<!-- $name:begin -->" end="<!-- $name:end -->"
  [ -f "$file" ] || printf '# Benchmarks\n' >"$file"
  if ! grep -qF "$begin" "$file"; then
    printf '\n%s\n%s\n' "$begin" "$end" >>"$file"
  fi
  awk -v b="$begin" -v e="$end" -v c="$content" '
    $0 == b { print; while ((getline line < c) > 0) print line; skip = 1; next }
    $0 == e { skip = 0 }
    !skip { print }' "$file" >"$file.tmp" && mv "$file.tmp" "$file"
}
