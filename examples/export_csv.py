#!/usr/bin/env python3
"""Export tickgraph quotes and window aggregates to CSV, page by page.

Standard library only. Written as notebook cells (`# %%`): run it as a script, or open it in Jupyter
or VS Code and run the cells one by one.

    python3 examples/export_csv.py --token "$TOKEN" --symbols AAPL,MSFT \
        --from 2026-01-05T14:30:00Z --to 2026-01-05T15:30:00Z --out-dir export/

writes export/quotes.csv and export/windows_ONE_MINUTE.csv. Pages are keyset cursors: each request
passes the previous page's `pageInfo.endCursor` as `after`, until `hasNextPage` is false.
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


# %% Options
def options(argv=None):
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
    return args


# %% Export
def main(argv=None):
    args = options(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    variables = {
        "symbols": [s.strip() for s in args.symbols.split(",")] if args.symbols else None,
        "from": args.from_,
        "to": args.to,
    }
    quotes_csv = os.path.join(args.out_dir, "quotes.csv")
    n = export(quotes_csv, QUOTE_FIELDS,
               pages(args.url, args.token, QUOTES_QUERY, "quotes", variables, args.page_size))
    print("%s: %d quotes" % (quotes_csv, n))
    windows_csv = os.path.join(args.out_dir, "windows_%s.csv" % args.size)
    n = export(windows_csv, WINDOW_FIELDS,
               pages(args.url, args.token, WINDOWS_QUERY, "windowAggregates",
                     dict(variables, size=args.size), args.page_size))
    print("%s: %d windows" % (windows_csv, n))


if __name__ == "__main__":
    try:
        main()
    except (GraphQLError, urllib.error.URLError) as err:
        print("error: %s" % err, file=sys.stderr)
        sys.exit(1)
