"""Collection rules for the whole repository: learner copies of the lessons are never tests.

lessons/make_learner_copies.py writes copies whose exercises raise NotImplementedError on
purpose and marks their folder with a `.learner-copies` file; any folder so marked is skipped,
and so is lessons/my-work (the default folder) even when its marker was deleted. That keeps
`pytest --nbmake tests lessons` green however many copies a learner has made.
"""
LEARNER_MARKER = ".learner-copies"


def pytest_ignore_collect(collection_path, config):
    if not collection_path.is_dir():
        return None
    if (collection_path / LEARNER_MARKER).exists():
        return True
    if collection_path.name == "my-work" and collection_path.parent.name == "lessons":
        return True
    return None
