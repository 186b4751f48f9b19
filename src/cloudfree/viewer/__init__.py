"""Looking at data and results: rendering, ``cloudfree render`` and the web viewer."""
