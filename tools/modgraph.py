#!/usr/bin/env python3
"""The module graph of src/, measured: which top-level module imports which.

Reads src/**/*.rs (test code left out: `#[cfg(test)]` modules, inline or in their own file,
and tests.rs files), collects every `use crate::...` and `crate::x::...` path, maps each to
its top-level module (a folder of src/ or a leaf file at the top of src/), and prints the
floors (a topological order), every cycle between top-level modules (Tarjan's strongly
connected components) and every arrow that runs up the declared floor order (FLOORS, the
layer table of README.md "Code layout"). Exits 1 when there is a cycle, an upward arrow, a
top-level module on no declared floor, a source file over MAX_FILE lines or a function over
MAX_FUNCTION lines (test code and test files left out).

  tools/modgraph.py [--root DIR] [--sizes]

--sizes also prints the ten largest .rs files (lines) and the ten longest functions (a brace
matching scan of `fn` items, test code left out). Python 3 standard library only.
"""

import argparse
import os
import re
import sys

# The declared floors, lowest first: a module may import modules on its own floor or lower
# ones only. The order is README.md's "Code layout" table read as imports really go: the pure
# unit model of systemd/ under config/ (which validates against it), error.rs above config/
# (a config error is one of its kinds), plan/ under prepare/ (which builds plan's
# LocalRelease), report/ under session/ and commands/ (which report progress through it).
FLOORS = [
    ["digest", "exit", "outcome", "human", "paths", "shell", "fault"],
    ["systemd"],
    ["config"],
    ["error"],
    ["cli"],
    ["release"],
    ["elf"],
    ["plan"],
    ["prepare"],
    ["transport"],
    ["report"],
    ["session"],
    ["commands"],
]
ROOT_FILES = {"lib.rs", "main.rs"}
# The house rules of README.md "Code layout": no source file over 800 lines, no function over 100.
MAX_FILE = 800
MAX_FUNCTION = 100


def blank(text):
    """The text with comments, strings and char literals replaced by spaces (lines kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif (m := re.match(r'b?r(#*)"', text[i : i + 80])) and (
            i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")
        ):
            end = '"' + m.group(1)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'" and (m := re.match(r"'(\\.[^']*|[^\\'])'", text[i : i + 12])):
            out.append(" " * m.end())
            i += m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def block_end(code, start):
    """The index just past the `}` closing the first `{` at or after `start`."""
    depth, i = 0, code.index("{", start)
    while i < len(code):
        if code[i] == "{":
            depth += 1
        elif code[i] == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(code)


TEST_MOD = re.compile(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*([;{])")


def strip_tests(code):
    """The code without its inline `#[cfg(test)] mod x { ... }`, and the names of the test
    modules it declares in files of their own (`#[cfg(test)] mod x;`)."""
    files = set()
    while m := TEST_MOD.search(code):
        if m.group(2) == ";":
            files.add(m.group(1))
            code = code[: m.start()] + " " * (m.end() - m.start()) + code[m.end() :]
        else:
            end = block_end(code, m.start(2))
            code = code[: m.start()] + re.sub(r"[^\n]", " ", code[m.start() : end]) + code[end:]
    return code, files


def sources(root):
    """(path, module path, code without tests) of every non-test .rs file under root/src."""
    src = os.path.join(root, "src")
    found, tests = [], set()
    for d, _, names in os.walk(src):
        for name in sorted(names):
            if name.endswith(".rs"):
                path = os.path.join(d, name)
                rel = os.path.relpath(path, src).split(os.sep)
                if rel[-1] in ("mod.rs",) or (len(rel) == 1 and rel[0] in ROOT_FILES):
                    mod = rel[:-1]
                else:
                    mod = rel[:-1] + [rel[-1][:-3]]
                with open(path, encoding="utf-8") as f:
                    code, test_children = strip_tests(blank(f.read()))
                tests.update(tuple(mod + [t]) for t in test_children)
                found.append((path, mod, code))
    return [
        (p, m, c)
        for p, m, c in found
        if m[-1:] != ["tests"] and not any(tuple(m[: k + 1]) in tests for k in range(len(m)))
    ]


def use_targets(tree):
    """The first path segments a `use` tree after `crate::` names (`{a::b, c}` -> a, c)."""
    tree = tree.strip()
    if not tree.startswith("{"):
        return [re.match(r"\w*", tree).group(0)]
    inner, depth, part, parts = tree[1 : tree.rindex("}")], 0, "", []
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(part)
            part = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        part += ch
    parts.append(part)
    return [t for p in parts if p.strip() for t in use_targets(p)]


def imports(code):
    """The top-level modules `code` names through `use crate::` and `crate::` paths."""
    names = set()
    for m in re.finditer(r"\buse\s+crate\s*::\s*([^;]*);", code):
        names.update(use_targets(m.group(1)))
    rest = re.sub(r"\buse\s+crate\s*::[^;]*;", " ", code)
    names.update(re.findall(r"(?<![\w$])crate\s*::\s*(\w+)", rest))
    return names


def graph(root):
    """{top-level module: {top-level modules it imports}} and the module of every top name."""
    files = sources(root)
    tops = {m[0] for _, m, _ in files if m}
    edges = {t: set() for t in tops}
    for _, mod, code in files:
        if not mod:
            continue
        for name in imports(code):
            if name in tops and name != mod[0]:
                edges[mod[0]].add(name)
    return edges


def tarjan(edges):
    """The strongly connected components of `edges` (lists of nodes)."""
    index, low, stack, on, comps = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return comps


def floors_of(edges, comps):
    """Floors measured: each component one above the highest it imports (0: imports none)."""
    comp_of = {v: i for i, c in enumerate(comps) for v in c}
    level = {}
    for i, comp in enumerate(comps):  # Tarjan yields components dependencies first
        below = [level[comp_of[w]] for v in comp for w in edges[v] if comp_of[w] != i]
        level[i] = 1 + max(below, default=-1)
    floors = {}
    for i, comp in enumerate(comps):
        floors.setdefault(level[i], []).append("+".join(comp))
    return [sorted(floors[k]) for k in sorted(floors)]


def upward(edges):
    """Arrows from a module to one on a higher declared floor (between declared modules)."""
    floor = {m: i for i, f in enumerate(FLOORS) for m in f}
    return [
        (a, b)
        for a in sorted(edges)
        for b in sorted(edges[a])
        if a in floor and b in floor and floor[b] > floor[a]
    ]


def functions(code):
    """(lines, name, first line) of every `fn` item with a body in `code`."""
    found = []
    for m in re.finditer(r"\bfn\s+(\w+)", code):
        brace, semi = code.find("{", m.end()), code.find(";", m.end())
        if brace < 0 or 0 <= semi < brace:
            continue
        end = block_end(code, brace)
        first = code.count("\n", 0, m.start()) + 1
        found.append((code.count("\n", m.start(), end) + 1, m.group(1), first))
    return found


def sizes(root):
    """Lines of the ten largest .rs files and the ten longest functions (tests left out)."""
    out, sized = [], []
    for d, _, names in os.walk(os.path.join(root, "src")):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(d, name)
                with open(path, encoding="utf-8") as f:
                    sized.append((sum(1 for _ in f), os.path.relpath(path, root)))
    out.append("largest files (lines):")
    for n, p in sorted(sized, key=lambda x: (-x[0], x[1]))[:10]:
        out.append(f"  {n:5}  {p}")
    fns = []
    for path, _, code in sources(root):
        rel = os.path.relpath(path, root)
        fns.extend((n, f"{rel}:{line}", name) for n, name, line in functions(code))
    out.append("longest functions (lines):")
    for n, where, name in sorted(fns, key=lambda x: (-x[0], x[1]))[:10]:
        out.append(f"  {n:5}  {name}  {where}")
    return out


def over_limits(root):
    """Source files over MAX_FILE lines and functions over MAX_FUNCTION lines, tests left out."""
    out = []
    for path, _, code in sources(root):
        rel = os.path.relpath(path, root)
        with open(path, encoding="utf-8") as f:
            n = sum(1 for _ in f)
        if n > MAX_FILE:
            out.append(f"  {rel}: {n} lines (at most {MAX_FILE}; move tests to a tests.rs, or split)")
        for lines, name, line in functions(code):
            if lines > MAX_FUNCTION:
                out.append(f"  {rel}:{line}: fn {name}: {lines} lines (at most {MAX_FUNCTION})")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."))
    ap.add_argument("--sizes", action="store_true", help="also the largest files and functions")
    args = ap.parse_args()
    edges = graph(args.root)
    comps = tarjan(edges)
    cycles = [c for c in comps if len(c) > 1]
    print("floors (measured, lowest first):")
    for i, f in enumerate(floors_of(edges, comps)):
        print(f"  {i}: {' '.join(f)}")
    print(f"arrows: {sum(len(v) for v in edges.values())}")
    print(f"cycles: {len(cycles)}")
    for c in cycles:
        inner = [f"{a}->{b}" for a in c for b in sorted(edges[a]) if b in c]
        print(f"  {' '.join(c)}: {', '.join(inner)}")
    up = upward(edges)
    print(f"upward arrows (declared floors: {' < '.join('/'.join(f) for f in FLOORS)}): {len(up)}")
    for a, b in up:
        print(f"  {a} -> {b}")
    undeclared = sorted(set(edges) - {m for f in FLOORS for m in f})
    print(f"modules on no declared floor: {len(undeclared)}")
    if undeclared:
        print(f"  {' '.join(undeclared)}")
    over = over_limits(args.root)
    print(f"over the size limits ({MAX_FILE} lines a file, {MAX_FUNCTION} a function): {len(over)}")
    if over:
        print("\n".join(over))
    if args.sizes:
        print("\n".join(sizes(args.root)))
    return 1 if cycles or up or undeclared or over else 0


if __name__ == "__main__":
    sys.exit(main())
