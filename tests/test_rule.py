"""The alarm rule: windows flagged above the value, episodes numbered from 1 (0 = not flagged),
the numbering carried across pieces exactly as one pass gives it."""

import numpy as np
import pytest

from lstm_rare_event.alarms.rule import AlarmRule, OpenEpisode

T0 = np.datetime64("2020-01-01T00:00:00", "s")


def at(*minutes):
    return T0 + np.asarray(minutes, dtype=np.int64) * np.timedelta64(60, "s")


def test_flagged_strictly_above_the_value():
    rule = AlarmRule(0.3)
    assert rule.flag(np.array([0.2, 0.3, 0.31])).tolist() == [False, False, True]


def test_episodes_numbered_from_one_with_zero_for_unflagged_windows():
    # flagged at 0, 20 (merged over the unflagged 10), 50 (30 after 20: a new one), 60 and 100
    rule = AlarmRule(1.0, merge_minutes=30)
    scores = np.array([2, 0, 2, 0, 0, 2, 2, 0, 0, 0, 2], dtype=float)
    e = rule.episodes(at(*range(0, 110, 10)), scores)
    assert e.number.tolist() == [1, 0, 1, 0, 0, 2, 2, 0, 0, 0, 3]
    assert np.flatnonzero(e.opened).tolist() == [0, 5, 10]
    assert e.start.tolist() == at(0, 50, 100).tolist() and e.end.tolist() == at(20, 60, 100).tolist()
    assert e.after == OpenEpisode(3, at(100)[0], at(100)[0])


def test_merge_zero_makes_every_flagged_window_its_own_episode():
    e = AlarmRule(0.5, merge_minutes=0).episodes(at(0, 2, 4), np.ones(3))
    assert e.number.tolist() == [1, 2, 3]


@pytest.mark.parametrize("cuts", [[1], [3], [4, 5], [1, 2, 3, 4, 5, 6, 7], [9]])
def test_pieces_numbered_one_after_another_give_the_one_pass_numbers(cuts):
    rng = np.random.default_rng(1)
    minutes = np.cumsum(rng.integers(1, 25, size=10))
    scores = rng.random(10)
    rule = AlarmRule(0.4, merge_minutes=20)
    whole = rule.episodes(at(*minutes), scores)
    before, numbers, opened, starts = OpenEpisode(), [], [], []
    for piece in np.split(np.arange(10), cuts):
        e = rule.episodes(at(*minutes[piece]), scores[piece], before)
        before = e.after
        numbers.append(e.number)
        opened.append(e.opened)
        starts.append(e.start)
    assert np.concatenate(numbers).tolist() == whole.number.tolist()
    assert np.concatenate(opened).tolist() == whole.opened.tolist()
    assert np.concatenate(starts).tolist() == whole.start.tolist()
    assert before == whole.after


def test_an_episode_continued_from_the_piece_before_is_not_opened_again():
    rule = AlarmRule(1.0, merge_minutes=30)
    first = rule.episodes(at(0, 10), np.array([2.0, 2.0]))
    second = rule.episodes(at(20, 30, 90), np.array([2.0, 0.0, 2.0]), first.after)
    assert second.number.tolist() == [1, 0, 2] and second.opened.tolist() == [False, False, True]
    assert second.start.tolist() == at(90).tolist() and second.end.tolist() == at(90).tolist()
    assert second.after == OpenEpisode(2, at(90)[0], at(90)[0])


def test_an_episode_is_still_open_less_than_the_merge_gap_after_its_last_flag():
    rule = AlarmRule(1.0, merge_minutes=30)
    episode = OpenEpisode(4, at(0)[0], at(10)[0])
    assert rule.still_open(episode, at(39)[0]) and not rule.still_open(episode, at(40)[0])
    assert not rule.still_open(OpenEpisode(), at(40)[0])
