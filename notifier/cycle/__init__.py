"""One project's polling cycle: list → settle what went missing → diff → route → commit
(``pipeline``), and the artefacts fetched for the sinks that ask for them (``enrich``).
"""
