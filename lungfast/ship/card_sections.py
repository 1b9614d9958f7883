"""The model card's calibration and referral sections, read from a run record (`ship.card` assembles the card)."""

from __future__ import annotations


def fmt(v, digits: int = 4) -> str:
    return "–" if v is None or v != v else f"{v:.{digits}f}"


def interval(ci) -> str:
    return f"{ci[0]:.4f}–{ci[1]:.4f}" if ci and ci[0] == ci[0] else "–"


def met(r: dict) -> str:
    return (
        "no threshold"
        if r.get("threshold") is None
        else "–"
        if r.get("met") is None
        else ("met" if r["met"] else "not met")
    )


def calibration_text(cal: dict) -> str:
    where = cal.get("evidence", "the valid part")
    if "kept" not in cal:  # a record from before #26: fitted on the valid part and always folded in
        choice = f"Temperature {cal.get('temperature', float('nan')):.4f}, fitted on the valid part."
    elif cal["kept"]:
        choice = (
            f"Temperature {cal['temperature']:.4f}, fitted on {where}: kept because it lowered that evidence's "
            f"cross-fitted ECE ({fmt(cal['evidence_ece_uncalibrated'])} to "
            f"{fmt(cal['evidence_ece_cross_fitted'])})."
        )
    elif not cal.get("identified", True):
        choice = (
            f"No temperature folded in: {where} (or a fold of it) holds no wrong tile, so it cannot set one "
            f"(a fit would only sharpen without limit: {cal['fitted_temperature']:.4f})."
        )
    else:
        choice = (
            f"No temperature folded in: the one fitted on {where}, {cal['fitted_temperature']:.4f}, did not lower "
            f"that evidence's cross-fitted ECE ({fmt(cal['evidence_ece_uncalibrated'])} uncalibrated, "
            f"{fmt(cal['evidence_ece_cross_fitted'])} scaled)."
        )
    return (
        f"{choice} Test ECE {fmt(cal.get('before', {}).get('ece'))} unscaled, {fmt(cal.get('after', {}).get('ece'))} "
        f"as shipped.\n"
    )


def referral_text(ref: dict) -> str:
    if "message" not in ref:  # a record from before #26
        return (
            f"Referral below a calibrated confidence of {fmt(ref.get('threshold'))}, the lowest at which the valid "
            f"part was >= 99% accurate: a point estimate with no stated guarantee (rerun for a certified one).\n"
        )
    t = ref["test"]
    found = (
        "every test tile is referred"
        if ref["threshold"] is None
        else f"on the test part it keeps {fmt(t['kept'], 3)} of tiles, {fmt(t['accuracy_kept'])} of them right "
        f"(95% interval {interval(t.get('accuracy_kept_ci95'))}, tile groups resampled): target "
        f"{ref['target']:.0%} {met(t)}"
    )
    return (
        f"Referral, certified on {ref.get('evidence', 'its evidence')}: {ref['message']}. Tiles below the threshold "
        f"should go to a pathologist; {found}.\n"
    )
