"""Canonical emotion names shared by every corpus parser."""

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
    """Map a corpus spelling to its canonical name; unknown labels pass through lower-cased."""
    key = str(label).strip().lower()
    return ALIASES.get(key, key)
