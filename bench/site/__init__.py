"""`bench site`: the results table and report bundles as a static website (leaderboards, bundle pages,
studies). It only reads results; see bench.site.build for the layout of what it writes."""
