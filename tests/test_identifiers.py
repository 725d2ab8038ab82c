"""EIK/BULSTAT check digits and SEOS GUIDs (domain.md §5), checked against an independent reference."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from schemas.identifiers import InvalidIdentifier, eik_is_valid, new_guid, normalize_guid, validate_eik

VALID_9 = ["000695235", "121759222", "831902088", "175074752"]

# Which branch of the reference computed a check digit; the random cross-check asserts it saw them all.
_BRANCHES: Counter[str] = Counter()


def _ref_check(digits: str, weights: list[int], fallback: list[int], label: str) -> int:
    """domain.md §5, written out on its own: weighted sum mod 11; on 10 the fallback weights; 10 → 0."""
    remainder = sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    if remainder != 10:
        _BRANCHES[f"{label}:first"] += 1
        return remainder
    remainder = sum(int(d) * w for d, w in zip(digits, fallback, strict=True)) % 11
    _BRANCHES[f"{label}:fallback" if remainder != 10 else f"{label}:ten-is-zero"] += 1
    return 0 if remainder == 10 else remainder


def ref_ninth(first8: str) -> int:
    return _ref_check(first8, list(range(1, 9)), list(range(3, 11)), "9")


def ref_thirteenth(digits_9_to_12: str) -> int:
    return _ref_check(digits_9_to_12, [2, 7, 3, 5], [4, 9, 5, 7], "13")


def ref_valid(value: str) -> bool:
    if not re.fullmatch(r"[0-9]{9}|[0-9]{13}", value):
        return False
    if ref_ninth(value[:8]) != int(value[8]):
        return False
    return len(value) == 9 or ref_thirteenth(value[8:12]) == int(value[12])


def ref_complete(prefix: str) -> str:
    """Append the correct check digit(s) to 8 or 12 digits."""
    nine = prefix[:8] + str(ref_ninth(prefix[:8]))
    if len(prefix) == 8:
        return nine
    return nine + prefix[9:12] + str(ref_thirteenth(nine[8] + prefix[9:12]))


@pytest.mark.parametrize("eik", VALID_9)
def test_known_administrations_are_valid(eik: str) -> None:
    assert ref_valid(eik), "the reference implementation must agree with the published EIKs"
    assert eik_is_valid(eik)
    assert validate_eik(eik) == eik


@pytest.mark.parametrize("eik", VALID_9)
def test_every_other_check_digit_is_refused(eik: str) -> None:
    for digit in "0123456789".replace(eik[8], ""):
        wrong = eik[:8] + digit
        assert not eik_is_valid(wrong)
        with pytest.raises(InvalidIdentifier, match=r"wrong check digit \(9th digit\)") as err:
            validate_eik(wrong)
        assert wrong in str(err.value)


def test_random_numbers_agree_with_the_reference() -> None:
    rng = random.Random(20251215)
    _BRANCHES.clear()
    for _ in range(2000):
        for length in (9, 13):
            number = "".join(rng.choice("0123456789") for _ in range(length))
            assert eik_is_valid(number) is ref_valid(number), number
            # A random number is mostly invalid; the completed one must be valid, any other last digit not.
            good = ref_complete(number[: length - 1])
            assert eik_is_valid(good), good
            bad = good[:-1] + str((int(good[-1]) + rng.randint(1, 9)) % 10)
            assert not eik_is_valid(bad), bad
    # The sample went through the rare branches too (remainder 10 → fallback weights → 10 becomes 0).
    assert {"9:first", "9:fallback", "9:ten-is-zero", "13:first", "13:fallback", "13:ten-is-zero"} <= set(_BRANCHES)


@pytest.mark.parametrize(("eik", "branch"), [("121759222", "123"), ("000695235", "000"), ("831902088", "990")])
def test_branch_numbers_have_a_second_check_digit(eik: str, branch: str) -> None:
    thirteen = eik + branch + str(ref_thirteenth(eik[8] + branch))
    assert validate_eik(thirteen) == thirteen
    wrong = thirteen[:12] + str((int(thirteen[12]) + 1) % 10)
    with pytest.raises(InvalidIdentifier, match=r"wrong check digit \(13th digit\)"):
        validate_eik(wrong)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "12345678",
        "1234567890",
        "12345678901",
        "12345678901234",
        "00069523a",
        "000 69523 5",
        "BG000695235",
        "-00695235",
    ],
)
def test_malformed_eik_is_refused_with_a_clear_message(value: str) -> None:
    assert not eik_is_valid(value)
    with pytest.raises(InvalidIdentifier, match="must be 9 or 13 digits"):
        validate_eik(value)


def test_validate_eik_strips_blanks_from_the_edges() -> None:
    assert validate_eik("  000695235\n") == "000695235"


@pytest.mark.parametrize("value", ["０００６９５２３５", "٠٠٠٦٩٥٢٣٥", "00069523²"])
def test_non_ascii_digits_are_refused(value: str) -> None:
    with pytest.raises(InvalidIdentifier):
        validate_eik(value)


GUID = "8f2b3c4d-1a2b-4c3d-9e8f-0a1b2c3d4e5f"


@pytest.mark.parametrize("value", [GUID, "{" + GUID + "}", GUID.upper(), "{" + GUID.upper() + "}", f"  {GUID}\n"])
def test_guid_is_normalised_to_lowercase_in_braces(value: str) -> None:
    assert normalize_guid(value) == "{" + GUID + "}"


@pytest.mark.parametrize(
    "value", ["", "{}", GUID[:-1], GUID.replace("a", "g"), GUID.replace("-", ""), "{" + GUID + "}}", GUID + "-0"]
)
def test_malformed_guid_is_refused(value: str) -> None:
    with pytest.raises(InvalidIdentifier, match="is not of the form"):
        normalize_guid(value)


def test_new_guids_are_normalised_and_unique() -> None:
    guids = [new_guid() for _ in range(1000)]
    assert all(normalize_guid(g) == g for g in guids)
    assert len(set(guids)) == 1000
