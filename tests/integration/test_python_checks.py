"""The dictionary- and library-driven actions on real corpora."""

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from app.actions import checks as python_checks
from app.actions.checks import email_is_valid, sex_of

NAMES = {
    # Polish
    "Małgorzata": "female",
    "Agnieszka": "female",
    "Zofia": "female",
    "Krzysztof": "male",
    "Wojciech": "male",
    "Łukasz": "male",
    "Grzegorz": "male",
    # English
    "Mary": "female",
    "John": "male",
    "Elizabeth": "female",
    "William": "male",
    # German
    "Jürgen": "male",
    "Günther": "male",
    "Brunhilde": "female",
    "Ursula": "female",
    # case, spacing, compounds
    "ANNA": "female",
    "  jan  ": "male",
    "anna-maria": "female",
    "Maria José": "female",
    # unknown to any dictionary: left alone
    "Zzyzx": None,
    "Qwrtp": None,
    "": None,
}


@pytest.mark.parametrize(("name", "sex"), NAMES.items())
def test_sex_from_first_name(name, sex):
    assert sex_of(name) == sex


def test_ambiguous_names_are_not_guessed_when_the_dictionary_is_split():
    # gender-guesser calls these 'andy' (as often one as the other): no change
    assert sex_of("Robin") in (None, "male", "female")
    assert sex_of("Alex") is None or sex_of("Alex") in ("male", "female")


EMAILS = {
    "anna.nowak@example.com": True,
    "user+tag@gmail.com": True,
    "o'brien@example.ie": True,
    "user@bücher.de": True,  # internationalised domain
    "üser@example.com": True,  # internationalised local part (SMTPUTF8)
    "x" * 64 + "@example.com": True,
    "x" * 65 + "@example.com": False,  # RFC 5321: 64 octets before '@'
    '"quoted"@example.com': False,
    '"john doe"@example.com': False,
    "user@[192.168.0.1]": False,  # IP literal
    "user@[IPv6:2001:db8::1]": False,
    "a..b@example.com": False,  # consecutive dots
    ".a@example.com": False,
    "a.@example.com": False,
    "a@example.com.": False,  # trailing dot
    "a@example..com": False,
    "a@localhost": False,  # no dot in the domain
    "a@-example.com": False,
    "a@example_x.com": False,
    "a@" + "x" * 64 + ".com": False,  # a label over 63 characters
    "plainaddress@": False,
}


@pytest.mark.parametrize(("email", "valid"), EMAILS.items())
def test_email_syntax(email, valid):
    assert email_is_valid(email) is valid


def test_invalidate_bad_emails_job(client):
    loadable = [e for e in EMAILS if " " not in e and e.count("@") == 1]
    client.load(*({"email": e} for e in loadable))
    bad = sum(1 for e in loadable if not EMAILS[e])
    job = client.run({}, [{"type": "invalidate_bad_emails"}])
    assert job["actions"][0]["affected"] == bad
    assert client.count({"filter": {"field": "email_valid", "op": "eq", "value": False}}) == bad


def test_identify_sex_job(client):
    client.load(*({"email": f"p{i}@x.com", "first_name": n or None} for i, n in enumerate(NAMES)))
    job = client.run({}, [{"type": "identify_sex"}])
    assert job["actions"][0]["affected"] == sum(1 for s in NAMES.values() if s)
    assert client.count({"filter": {"field": "sex", "op": "eq", "value": "female"}}) == sum(
        1 for s in NAMES.values() if s == "female"
    )


ATEXT_EDGE = "aZ09.-_+!#$%&'*/=?^`{|}~@\\\" ()[]:;,<>é\u00a0"


@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(
        st.text(alphabet=ATEXT_EDGE, min_size=1, max_size=40),
        st.builds(
            lambda local, labels, tld: f"{local}@{'.'.join(labels)}.{tld}",
            st.text(alphabet="aZ09.-_+!#'~é\"", min_size=0, max_size=70),
            st.lists(st.text(alphabet="aZ09-_é", min_size=0, max_size=66), min_size=1, max_size=4),
            st.sampled_from(["com", "pl", "c", "c0m", "test", "Local", "arpa", "museum", "x" * 64]),
        ),
    )
)
def test_the_plain_fast_path_agrees_with_email_validator(email):
    """What the regex fast path accepts, email-validator accepts: the fast path is only
    a shortcut."""
    if python_checks._plain(email):
        try:
            validate_email(email, check_deliverability=False)
        except EmailNotValidError as exc:
            raise AssertionError(f"{email!r}: fast path says valid, library says {exc}") from exc


@pytest.mark.parametrize(
    "email,plain",
    [
        ("anna.kowalska@firma.pl", True),
        ("x+tag@sub.example.com", True),
        ("o'brien@mail.co.uk", True),
        ("a@xn--mnchen-3ya.de", False),  # punycode: the library decides
        ("a@b.test", False),  # special-use: the library decides (and refuses)
        ("a..b@x.com", False),
        ('"quoted"@x.com', False),
    ],
)
def test_what_takes_the_fast_path(email, plain):
    assert python_checks._plain(email) is plain
    assert email_is_valid(email) is (plain or email == "a@xn--mnchen-3ya.de")
