//! The keys: one table that both the key handling and the help read, so they cannot
//! disagree.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::intent::Intent;

pub struct Binding {
    pub keys: &'static [KeyCode],
    /// How the help writes the keys.
    pub label: &'static str,
    pub intent: Intent,
    pub help: &'static str,
}

const fn bind(
    keys: &'static [KeyCode],
    label: &'static str,
    intent: Intent,
    help: &'static str,
) -> Binding {
    Binding {
        keys,
        label,
        intent,
        help,
    }
}

use KeyCode::{Char, Down, End, Esc, Home, Left, Right, Up};

pub const KEYMAP: &[Binding] = &[
    bind(
        &[Right, Char('l')],
        "→ l",
        Intent::NextSample,
        "next sample",
    ),
    bind(
        &[Left, Char('h')],
        "← h",
        Intent::PreviousSample,
        "previous sample",
    ),
    bind(
        &[Up, Char('k'), Char(']')],
        "↑ k ]",
        Intent::NextEpoch,
        "next epoch",
    ),
    bind(
        &[Down, Char('j'), Char('[')],
        "↓ j [",
        Intent::PreviousEpoch,
        "previous epoch",
    ),
    bind(
        &[Char('n')],
        "n",
        Intent::NextEvent,
        "next epoch with an event (! on the timeline)",
    ),
    bind(
        &[Char('N')],
        "N",
        Intent::PreviousEvent,
        "previous epoch with an event",
    ),
    bind(&[Home], "Home", Intent::FirstEpoch, "first epoch"),
    bind(
        &[End],
        "End",
        Intent::LatestEpoch,
        "latest epoch, and follow",
    ),
    bind(
        &[Char('f')],
        "f",
        Intent::ToggleFollow,
        "follow the latest epoch on/off",
    ),
    bind(&[Char('m')], "m", Intent::NextMethod, "next CAM method"),
    bind(
        &[Char('y')],
        "y",
        Intent::NextLayer,
        "next layer of the network",
    ),
    bind(
        &[Char('t')],
        "t",
        Intent::NextTarget,
        "target: predicted, label, each class",
    ),
    bind(
        &[Char('o')],
        "o",
        Intent::NextOverlay,
        "overlay style: alpha, writeup, gradcam",
    ),
    bind(&[Char('g')], "g", Intent::ToggleGrid, "grid of all samples"),
    bind(&[Char('b')], "b", Intent::ToggleBox, "object box on/off"),
    bind(
        &[Char('s')],
        "s",
        Intent::Snapshot,
        "snapshot PNGs: overlay, side by side, strip",
    ),
    bind(
        &[Char('a')],
        "a",
        Intent::Animate,
        "animated GIF across epochs",
    ),
    bind(
        &[
            Char('1'),
            Char('2'),
            Char('3'),
            Char('4'),
            Char('5'),
            Char('6'),
            Char('7'),
            Char('8'),
        ],
        "1…8",
        Intent::ToggleRun(0),
        "comparing: show or hide run 1…8 (of the page)",
    ),
    bind(
        &[Char('r')],
        "r",
        Intent::NextRunPage,
        "comparing over 8 runs: the next 8",
    ),
    bind(
        &[Char('d')],
        "d",
        Intent::NextDifference,
        "comparing: next pair of runs to difference",
    ),
    bind(&[Char('?')], "?", Intent::ToggleHelp, "this help"),
    bind(
        &[Esc],
        "Esc",
        Intent::Back,
        "close the help or the grid; else quit",
    ),
    bind(&[Char('q')], "q  Ctrl-C", Intent::Quit, "quit"),
];

/// What the mouse does, for the help.
pub const MOUSE: &[(&str, &str)] = &[
    ("click", "select a sample or an epoch"),
    ("wheel", "scrub epochs"),
];

pub fn intent_of(key: KeyEvent) -> Option<Intent> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return (key.code == Char('c')).then_some(Intent::Quit);
    }
    let intent = KEYMAP
        .iter()
        .find(|b| b.keys.contains(&key.code))
        .map(|b| b.intent)?;
    Some(match (intent, key.code) {
        // One binding for the eight digits: the digit says which run.
        (Intent::ToggleRun(_), Char(digit)) => {
            Intent::ToggleRun(digit.to_digit(10)?.checked_sub(1)? as usize)
        }
        _ => intent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_is_bound_twice_and_labels_name_the_keys() {
        let mut seen = Vec::new();
        for binding in KEYMAP {
            for key in binding.keys {
                assert!(!seen.contains(key), "{key:?} bound twice");
                seen.push(*key);
                // A range (1…8) names its ends.
                if let Char(c) = key
                    && !binding.label.contains('…')
                {
                    assert!(binding.label.contains(*c), "{} lacks {c}", binding.label);
                }
            }
        }
    }

    #[test]
    fn digits_choose_the_run() {
        let press = |c| intent_of(KeyEvent::from(Char(c)));
        assert_eq!(press('1'), Some(Intent::ToggleRun(0)));
        assert_eq!(press('8'), Some(Intent::ToggleRun(7)));
        assert_eq!(press('9'), None);
    }
}
