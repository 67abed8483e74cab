#!/usr/bin/env python3
"""Export tickgraph quotes and window aggregates to CSV, page by page.

Standard library only. Run it as a script:

    python3 examples/export_csv.py --token "$TOKEN" --symbols AAPL,MSFT \
        --from 2026-01-05T14:30:00Z --to 2026-01-05T15:30:00Z --out-dir export/

which writes export/quotes.csv and export/windows_ONE_MINUTE.csv; or, in a notebook (the file is
written as `# %%` cells; paste it into a cell, or `from export_csv import export_csv`), call

    export_csv(url, token, symbols=["AAPL", "MSFT"], out_dir="export")

Pages are keyset cursors: each request passes the previous page's `pageInfo.endCursor` as `after`,
until `hasNextPage` is false.
"""

# %% Setup
import argparse
import csv
import json
import os
import sys
import urllib.error
import urllib.request

QUOTE_FIELDS = [
    "id", "symbol", "eventTime", "seq", "price", "size",
    "bid", "bidSize", "ask", "askSize", "exchange", "delayed",
]
WINDOW_FIELDS = [
    "symbol", "size", "windowStart", "windowEnd", "open", "high", "low", "close",
    "mean", "vwap", "volume", "tickCount", "revision", "final", "delayed",
]

QUOTES_QUERY = """
query ExportQuotes($symbols: [String!], $from: DateTime, $to: DateTime, $first: Int!, $after: String) {
  quotes(symbols: $symbols, from: $from, to: $to, first: $first, after: $after, order: ASC) {
    nodes { %s }
    pageInfo { hasNextPage endCursor }
  }
}
""" % " ".join(QUOTE_FIELDS)

WINDOWS_QUERY = """
query ExportWindows($size: WindowSize!, $symbols: [String!], $from: DateTime, $to: DateTime,
                    $first: Int!, $after: String) {
  windowAggregates(size: $size, symbols: $symbols, from: $from, to: $to, first: $first, after: $after,
                   order: ASC) {
    nodes { %s }
    pageInfo { hasNextPage endCursor }
  }
}
""" % " ".join(WINDOW_FIELDS)


class GraphQLError(Exception):
    pass


def graphql(url, token, query, variables):
    """POSTs one operation; returns its data, or raises with the server's errors."""
    request = urllib.request.Request(
        url,
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"content-type": "application/json", "authorization": "Bearer " + token},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.load(response)
    except urllib.error.HTTPError as err:
        body = json.load(err)
    if body.get("errors"):
        raise GraphQLError("; ".join(
            "%s: %s" % (e.get("extensions", {}).get("code", "ERROR"), e["message"]) for e in body["errors"]
        ))
    return body["data"]


def pages(url, token, query, field, variables, page_size):
    """Yields the nodes of a cursor-paged field, one page at a time."""
    after = None
    while True:
        data = graphql(url, token, query, dict(variables, first=page_size, after=after))
        connection = data[field]
        yield connection["nodes"]
        if not connection["pageInfo"]["hasNextPage"]:
            return
        after = connection["pageInfo"]["endCursor"]


def cell(value):
    """A CSV cell as GraphQL wrote the value: null is empty, booleans are true/false."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def export(path, fields, node_pages):
    """Writes the pages' nodes to a CSV file with a header row; returns the number of rows."""
    rows = 0
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        for nodes in node_pages:
            for node in nodes:
                writer.writerow([cell(node[k]) for k in fields])
                rows += 1
    return rows


# %% Export
def export_csv(url="http://localhost:4000/graphql", token=None, symbols=None, from_=None, to=None,
               size="ONE_MINUTE", page_size=1000, out_dir="."):
    """Writes quotes.csv and windows_<size>.csv into out_dir; returns {path: rows written}."""
    token = token or os.environ.get("TICKGRAPH_TOKEN")
    if not token:
        raise ValueError("a token is required: token=... or TICKGRAPH_TOKEN")
    if isinstance(symbols, str):
        symbols = [s.strip() for s in symbols.split(",") if s.strip()]
    os.makedirs(out_dir, exist_ok=True)
    variables = {"symbols": symbols or None, "from": from_, "to": to}
    written = {}
    quotes_csv = os.path.join(out_dir, "quotes.csv")
    written[quotes_csv] = export(quotes_csv, QUOTE_FIELDS,
                                 pages(url, token, QUOTES_QUERY, "quotes", variables, page_size))
    windows_csv = os.path.join(out_dir, "windows_%s.csv" % size)
    written[windows_csv] = export(windows_csv, WINDOW_FIELDS,
                                  pages(url, token, WINDOWS_QUERY, "windowAggregates",
                                        dict(variables, size=size), page_size))
    return written


# %% Command line
def main(argv=None):
    p = argparse.ArgumentParser(description="Export tickgraph quotes and window aggregates to CSV.")
    p.add_argument("--url", default=os.environ.get("TICKGRAPH_URL", "http://localhost:4000/graphql"))
    p.add_argument("--token", default=os.environ.get("TICKGRAPH_TOKEN"),
                   help="bearer token (env TICKGRAPH_TOKEN); mint one with `npx tickgraph token`")
    p.add_argument("--symbols", help="comma-separated symbols (default: all)")
    p.add_argument("--from", dest="from_", metavar="ISO", help="from this event time / window end")
    p.add_argument("--to", metavar="ISO", help="before this event time / window end")
    p.add_argument("--size", default="ONE_MINUTE", choices=["ONE_MINUTE", "FIVE_MINUTES", "FIFTEEN_MINUTES"])
    p.add_argument("--page-size", type=int, default=1000, help="rows per request (at most 1000)")
    p.add_argument("--out-dir", default=".")
    args = p.parse_args(argv)
    if not args.token:
        p.error("a token is required: --token or TICKGRAPH_TOKEN")
    try:
        written = export_csv(args.url, args.token, args.symbols, args.from_, args.to, args.size,
                             args.page_size, args.out_dir)
    except (GraphQLError, urllib.error.URLError) as err:
        print("error: %s" % err, file=sys.stderr)
        return 1
    for path, n in written.items():
        print("%s: %d %s" % (path, n, "quotes" if path.endswith("quotes.csv") else "windows"))
    return 0


# Only a script's own command line is parsed. Pasted into a notebook cell, the code also runs as
# __main__, but with no __file__ and the kernel's arguments in sys.argv: there it only defines
# export_csv (and in a Jupyter kernel whatever the front end sets, ipykernel is loaded).
if __name__ == "__main__" and "__file__" in globals() and "ipykernel" not in sys.modules:
    sys.exit(main())
