"""Fails when any import cycle joins pushsvc's modules; `scripts/check` runs it.

import-linter (.importlinter) keeps the layers and, inside each package, the
siblings acyclic; this covers what its contracts cannot say: no cycle between
any two modules anywhere in the tree, the top level included. The graph is
grimp's (import-linter's own), which counts every import statement, so an import
inside a function that closes a cycle is a cycle too.
"""

from __future__ import annotations

import sys

import grimp


def cycles(package: str) -> list[list[str]]:
    """The module graph's strongly connected components of more than one module (Tarjan, iterative)."""
    graph = grimp.build_graph(package)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in sorted(graph.modules)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            targets = edges[node]
            if child < len(targets):
                work.append((node, child + 1))
                target = targets[child]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def main() -> int:
    found = cycles("pushsvc")
    for component in found:
        print(f"import cycle among: {', '.join(component)}", file=sys.stderr)
    if found:
        return 1
    print("import cycles: none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
