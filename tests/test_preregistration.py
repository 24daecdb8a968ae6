"""The scorecard's pre-registration section: the tagged commit and every later change to a rule file, from git;
without the tag it says so."""

import subprocess

from mimstudy.book.claims.preregistration import RULE_FILES, TAG, changes_since, preregistration_markdown, tagged_commit


def git(root, *args):
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"})


def commit(root, path, text, message):
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(text)
    git(root, "add", path)
    git(root, "commit", "-q", "-m", message)


def test_without_the_tag_the_page_says_so(tmp_path):
    git(tmp_path, "init", "-q")
    commit(tmp_path, RULE_FILES[0] + "verdicts.py", "A = 1\n", "rules")
    assert tagged_commit(tmp_path) is None and changes_since(tmp_path) is None
    text = preregistration_markdown(tmp_path)
    assert f"`{TAG}` that records their commit is not in this repository yet" in text
    assert "not in this repository yet" in preregistration_markdown(tmp_path / "not-a-repo")  # no git: the same


def test_changes_to_rule_files_after_the_tag_are_listed(tmp_path):
    git(tmp_path, "init", "-q")
    commit(tmp_path, RULE_FILES[0] + "verdicts.py", "A = 1\n", "rules")
    git(tmp_path, "tag", TAG)
    assert "No commit since has changed a rule file" in preregistration_markdown(tmp_path)
    commit(tmp_path, "README.md", "words\n", "docs only")  # not a rule file: not listed
    commit(tmp_path, RULE_FILES[0] + "gates.py", "B = 2\n", "gates: a wider band")
    changes = changes_since(tmp_path)
    assert [(subject, files) for _, _, subject, files in changes] == [("gates: a wider band",
                                                                      f"`{RULE_FILES[0]}gates.py`")]
    text = preregistration_markdown(tmp_path)
    assert "Changed after the pre-registration** (1 commit" in text and "gates: a wider band" in text
    assert f"tagged `{TAG}` at `{tagged_commit(tmp_path)[0][:10]}`" in text


def test_a_clone_without_tags_finds_the_recorded_commit(tmp_path):
    from mimstudy.book.claims.preregistration import RECORD

    git(tmp_path, "init", "-q")
    commit(tmp_path, RULE_FILES[0] + "verdicts.py", "A = 1\n", "rules")
    rules = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    commit(tmp_path, str(RECORD), f"{rules} the verdict rules as pre-registered\n", "record the pre-registration")
    assert tagged_commit(tmp_path)[0] == rules and changes_since(tmp_path) == []
    commit(tmp_path, RULE_FILES[0] + "gates.py", "B = 2\n", "gates: later")
    assert [s for _, _, s, _ in changes_since(tmp_path)] == ["gates: later"]
    commit(tmp_path, str(RECORD), "0" * 40 + "\n", "a commit this clone lacks")
    assert tagged_commit(tmp_path) is None  # said so, not invented
