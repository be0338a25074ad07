#!/usr/bin/env python3
"""Checks that no source file imports, through any chain, a file that imports it.

A file "imports" another when it names a module of it: `use crate::a::b::X`,
`use super::c`, or a path written inline (`crate::a::b::f(...)`,
`super::c::X`). A path is resolved to the deepest module file that exists
(`src/a/b.rs` or `src/a/b/mod.rs`), so a module that re-exports a child
(`pub use job::BackupHandle` in `backup/mod.rs`) imports that child, and a
child that names `super::BackupError` imports its `mod.rs`. Declaring a
module (`mod child;`) is not an import. Prints every cycle (a strongly
connected set of files) and exits 1 if there is one.

Usage: check-imports.py SRC_DIR [SRC_DIR ...]  (each the `src` of one crate)
"""
import re
import sys
from pathlib import Path

PATH_RE = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_RE = re.compile(r"\buse\s+([^;]+);", re.S)


def module_of(src: Path, file: Path) -> list[str]:
    rel = file.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def file_of(src: Path, module: list[str]):
    if not module:
        return src / "lib.rs" if (src / "lib.rs").exists() else None
    for candidate in (src.joinpath(*module).with_suffix(".rs"), src.joinpath(*module, "mod.rs")):
        if candidate.exists():
            return candidate
    return None


def expand_use(tree: str) -> list[str]:
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]."""
    tree = re.sub(r"\s+", "", tree)
    out = []

    def walk(prefix: str, rest: str):
        brace = rest.find("{")
        if brace == -1:
            for item in split_top(rest):
                out.append(prefix + item)
            return
        head, body = rest[:brace], rest[brace + 1 : rest.rfind("}")]
        for item in split_top(body):
            walk(prefix + head, item)

    def split_top(text: str) -> list[str]:
        items, depth, current = [], 0, ""
        for ch in text:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                items.append(current)
                current = ""
            else:
                current += ch
        if current:
            items.append(current)
        return items

    walk("", tree)
    return [re.sub(r"\bas\b.*$", "", p) for p in out]


def strip_comments(text: str) -> str:
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def imports(src: Path, file: Path) -> set:
    here = module_of(src, file)
    text = strip_comments(file.read_text(encoding="utf-8"))
    # A file's own `mod x;` child, and `#[cfg(test)] mod tests` blocks, are not imports of the file.
    text = re.sub(r"#\[cfg\(test\)\]\s*mod\s+tests\s*\{.*", "", text, flags=re.S)
    paths = []
    for m in USE_RE.finditer(text):
        paths.extend(expand_use(m.group(1)))
    paths.extend(m.group(1) + m.group(2) for m in PATH_RE.finditer(text))
    # A path that starts with one of this file's own child modules (`engine::f()`
    # in `backup/mod.rs`, `pub use job::BackupHandle`) names that child.
    children = set(re.findall(r"\bmod\s+([A-Za-z_][A-Za-z0-9_]*)\s*;", text))
    for child in children:
        paths.extend("self::" + child + m.group(1) for m in re.finditer(r"(?<![A-Za-z0-9_:])" + child + r"((?:::[A-Za-z_][A-Za-z0-9_]*)+)", text))
        paths.extend("self::" + p for p in [p for p in sum((expand_use(m.group(1)) for m in USE_RE.finditer(text)), []) if p.split("::")[0] == child])
    found = set()
    for path in paths:
        parts = [p for p in path.split("::") if p]
        if not parts or parts[0] not in ("crate", "super", "self"):
            continue
        if parts[0] == "crate":
            base, rest = [], parts[1:]
        else:
            base = here[:]
            rest = parts
            while rest and rest[0] in ("super", "self"):
                if rest[0] == "super":
                    base = base[:-1]
                rest = rest[1:]
        # The deepest module file the path names.
        target = None
        for i in range(len(rest), -1, -1):
            candidate = file_of(src, base + rest[:i])
            if candidate is not None:
                target = candidate
                break
        if target is not None and target != file:
            found.add(target)
    return found


def strongly_connected(graph: dict) -> list:
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            out.append(component)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main() -> int:
    failed = False
    for src in map(Path, sys.argv[1:]):
        graph = {f: imports(src, f) for f in sorted(src.rglob("*.rs")) if "bin" not in f.relative_to(src).parts}
        for component in strongly_connected(graph):
            if len(component) > 1:
                failed = True
                names = sorted(str(f.relative_to(src.parent)) for f in component)
                print(f"import cycle among {len(names)} files: " + ", ".join(names))
                for f in sorted(component):
                    inside = sorted(str(t.relative_to(src.parent)) for t in graph[f] if t in component)
                    print(f"  {f.relative_to(src.parent)} -> {', '.join(inside)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
