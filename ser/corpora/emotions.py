"""Canonical emotion names shared by every corpus parser, and the speaker of a clip without one."""

NO_SPEAKER = "unknown"  # the speaker of a clip whose corpus names none (a folder of one's own recordings)


def speakers_phrase(speakers) -> str:
    """'12 speakers', '1 speaker', or 'no speaker ids' for a column of clips' speakers (a pandas Series)."""
    named = speakers[speakers.astype(str) != NO_SPEAKER].nunique()
    if not named:
        return "no speaker ids"
    unnamed = " (and clips without a speaker id)" if named < speakers.nunique() else ""
    return f"{named} speaker{'s' if named != 1 else ''}{unnamed}"

ANGRY, CALM, DISGUST, FEARFUL, HAPPY, NEUTRAL, SAD, SURPRISED = (
    "angry", "calm", "disgust", "fearful", "happy", "neutral", "sad", "surprised",
)

# Spellings seen in corpora and user CSVs, mapped to the canonical names above.
ALIASES = {
    "ang": ANGRY, "anger": ANGRY, "angry": ANGRY,
    "cal": CALM, "calm": CALM,
    "dis": DISGUST, "disgust": DISGUST, "disgusted": DISGUST,
    "fea": FEARFUL, "fear": FEARFUL, "fearful": FEARFUL,
    "hap": HAPPY, "happy": HAPPY, "happiness": HAPPY, "joy": HAPPY,
    "neu": NEUTRAL, "neutral": NEUTRAL,
    "sad": SAD, "sadness": SAD,
    "sur": SURPRISED, "surprise": SURPRISED, "surprised": SURPRISED, "ps": SURPRISED,
    "boredom": "boredom", "bored": "boredom",
}


def canonical(label: str) -> str:
    """Map a corpus spelling (any case) to its canonical name; other labels pass through as written,
    only stripped of surrounding spaces: ``01``, ``NA`` or ``très fâché`` stay what they are."""
    text = str(label).strip()
    return ALIASES.get(text.lower(), text)
