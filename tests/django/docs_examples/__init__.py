"""The code of docs/tasks.md: the page includes these files, and test_docs_examples.py runs them."""
