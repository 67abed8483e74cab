"""Window aggregates into a pandas DataFrame, straight from tickgraph's CSV export.

Notebook cells (`# %%`): open it in Jupyter or VS Code and run the cells, or paste them; as a script,

    python3 examples/windows_dataframe.py --token "$TOKEN" --symbols AAPL,MSFT --size FIVE_MINUTES

prints each symbol's last close and the closes of the last windows side by side. Needs pandas
(`pip install pandas`); the export itself is a plain URL, which pandas reads like any other CSV:
GET /export/window-aggregates.csv with the bearer token in a header.
"""

# %% Setup
import os
import sys
import urllib.error
import urllib.parse

try:
    import pandas as pd
except ImportError:  # the loader says what to install when it is called
    pd = None

TICKGRAPH_URL = os.environ.get("TICKGRAPH_URL", "http://localhost:4000")
TICKGRAPH_TOKEN = os.environ.get("TICKGRAPH_TOKEN")


# %% Loader
def load_windows(url=TICKGRAPH_URL, token=TICKGRAPH_TOKEN, size="ONE_MINUTE", symbols=None, start=None,
                 end=None):
    """The windows of `size` (window ends in [start, end), ISO instants) as a DataFrame, oldest first.

    Columns are the GraphQL fields of WindowAggregate; windowStart and windowEnd are UTC timestamps.
    A column the token may not read is left out, and the rows stop at the delay cutoff when it lacks
    REALTIME, as the GraphQL queries do.
    """
    if pd is None:
        raise ImportError("pandas is needed to load a DataFrame: pip install pandas")
    if not token:
        raise ValueError("a token is required: token=... or TICKGRAPH_TOKEN")
    params = {"size": size}
    if symbols:
        params["symbols"] = symbols if isinstance(symbols, str) else ",".join(symbols)
    if start:
        params["from"] = start
    if end:
        params["to"] = end
    base = url[: -len("/graphql")] if url.endswith("/graphql") else url.rstrip("/")
    export = "%s/export/window-aggregates.csv?%s" % (base, urllib.parse.urlencode(params))
    try:
        # For an http(s) URL, pandas sends storage_options as request headers.
        frame = pd.read_csv(export, storage_options={"Authorization": "Bearer " + token})
    except urllib.error.HTTPError as err:
        raise RuntimeError("%s: %s" % (err.code, err.read().decode(errors="replace"))) from None
    for column in ("windowStart", "windowEnd"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


# %% Explore (in a notebook, e.g.)
# windows = load_windows(symbols=["AAPL", "MSFT"], size="FIVE_MINUTES")
# windows.pivot(index="windowEnd", columns="symbol", values="close").tail()


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(description="Load tickgraph window aggregates into a pandas DataFrame.")
    p.add_argument("--url", default=TICKGRAPH_URL, help="the server (env TICKGRAPH_URL)")
    p.add_argument("--token", default=TICKGRAPH_TOKEN, help="bearer token (env TICKGRAPH_TOKEN)")
    p.add_argument("--size", default="ONE_MINUTE", choices=["ONE_MINUTE", "FIVE_MINUTES", "FIFTEEN_MINUTES"])
    p.add_argument("--symbols", help="comma-separated symbols (default: all)")
    p.add_argument("--from", dest="start", metavar="ISO")
    p.add_argument("--to", dest="end", metavar="ISO")
    args = p.parse_args(argv)
    try:
        windows = load_windows(args.url, args.token, args.size, args.symbols, args.start, args.end)
    except (ImportError, ValueError, RuntimeError, urllib.error.URLError) as err:
        print("error: %s" % err, file=sys.stderr)
        return 1
    print("%d windows of %d symbols" % (len(windows), windows["symbol"].nunique()))
    if len(windows):
        print(windows.groupby("symbol")["close"].last().to_string())
        print(windows.pivot(index="windowEnd", columns="symbol", values="close").tail().to_string())
    return 0


# Pasted into a notebook cell (run as __main__, with no __file__ and the kernel's arguments in
# sys.argv) the file only defines load_windows.
if __name__ == "__main__" and "__file__" in globals() and "ipykernel" not in sys.modules:
    sys.exit(main())
