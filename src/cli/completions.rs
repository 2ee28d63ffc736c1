//! `ferry completions SHELL` and `ferry man [COMMAND]`: generated from the clap definitions in
//! `cli.rs`, so they always list the subcommands and flags this binary has.
//!
//! Where to install them (README "Install" says the same):
//! - bash: `~/.local/share/bash-completion/completions/ferry`
//! - zsh:  `_ferry` in a directory of `$fpath` (e.g. `~/.zfunc`, with `fpath+=~/.zfunc` before
//!   `compinit` in ~/.zshrc)
//! - fish: `~/.config/fish/completions/ferry.fish`
//! - man:  `~/.local/share/man/man1/ferry.1` and `ferry-COMMAND.1`
//!
//! The dynamic completion (`source <(COMPLETE=bash ferry)`, clap_complete's `CompleteEnv`) asks
//! the binary at each TAB, and also offers the service and host names of deploy.toml.

use clap::CommandFactory;

use crate::cli::{Cli, Shell, command, hide_idle_globals};
use crate::error::Error;

/// The completion script for `shell`.
pub fn completions(shell: Shell) -> Vec<u8> {
    let mut cmd = command();
    let mut out = Vec::new();
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(generator, &mut cmd, "ferry", &mut out);
    out
}

/// The subcommands that get a page of their own (`ferry man COMMAND`).
pub fn man_commands() -> Vec<String> {
    man_root()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect()
}

/// The command line the man pages describe: no `help` subcommand (there is no ferry-help(1)).
fn man_root() -> clap::Command {
    hide_idle_globals(Cli::command().disable_help_subcommand(true))
}

/// The man page: ferry(1), or ferry-COMMAND(1) for a subcommand.
pub fn man(command: Option<&str>) -> Result<Vec<u8>, Error> {
    let root = man_root();
    let page = match command {
        None => root,
        Some(name) => {
            let sub = root
                .find_subcommand(name)
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "`ferry man {name}`: no such command; man pages exist for: {}",
                        man_commands().join(", ")
                    ))
                })?
                .clone();
            let name = format!("ferry-{}", sub.get_name());
            sub.name(name.clone())
                .bin_name(name.replace('-', " "))
                .version(env!("CARGO_PKG_VERSION"))
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .map_err(|e| Error::Local(format!("cannot render the man page: {e}")))?;
    Ok(out)
}

/// Write ferry.1 and ferry-COMMAND.1 for every command into `dir` (created); the paths written.
pub fn write_man_pages(dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>, Error> {
    let local = |p: &std::path::Path, e: std::io::Error| {
        Error::Local(format!("cannot write {}: {e}", p.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| local(dir, e))?;
    let mut written = Vec::new();
    let pages = std::iter::once(None).chain(man_commands().into_iter().map(Some));
    for cmd in pages {
        let file = match &cmd {
            None => dir.join("ferry.1"),
            Some(c) => dir.join(format!("ferry-{c}.1")),
        };
        std::fs::write(&file, man(cmd.as_deref())?).map_err(|e| local(&file, e))?;
        written.push(file);
    }
    Ok(written)
}

/// The config a completion reads: `--config`/`-c` on the command line being completed, else
/// `FERRY_CONFIG`, else ./deploy.toml.
fn config_for_completion(words: &[String]) -> std::path::PathBuf {
    let mut it = words.iter();
    while let Some(w) = it.next() {
        if w == "--config" || w == "-c" {
            if let Some(v) = it.next() {
                return v.into();
            }
        } else if let Some(v) = w.strip_prefix("--config=") {
            return v.into();
        }
    }
    std::env::var_os("FERRY_CONFIG")
        .filter(|v| !v.is_empty())
        .map(Into::into)
        .unwrap_or_else(|| "deploy.toml".into())
}

/// The names under `[services]`, `[hosts]` and `[groups]` of the config text (in file order;
/// nothing when it does not parse: a completion never fails).
pub fn names_in(text: &str, tables: &[&str]) -> Vec<String> {
    let Ok(doc) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    tables
        .iter()
        .filter_map(|t| doc.get(*t).and_then(toml::Value::as_table))
        .flat_map(|t| t.keys().cloned())
        .collect()
}

fn candidates(tables: &[&str]) -> Vec<clap_complete::CompletionCandidate> {
    let words: Vec<String> = std::env::args().collect();
    let text = std::fs::read_to_string(config_for_completion(&words)).unwrap_or_default();
    names_in(&text, tables)
        .into_iter()
        .map(clap_complete::CompletionCandidate::new)
        .collect()
}

/// Completion of a SERVICE argument: the services of deploy.toml.
pub fn services() -> Vec<clap_complete::CompletionCandidate> {
    candidates(&["services"])
}

/// Completion of `-H`: the hosts and groups of deploy.toml.
pub fn hosts() -> Vec<clap_complete::CompletionCandidate> {
    candidates(&["hosts", "groups"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_names_come_from_the_config_tables() {
        let text = "[hosts.web1]\naddress = \"a\"\n[hosts.db]\naddress = \"b\"\n\
                    [groups]\nfront = [\"web1\"]\n[services.api]\nunits = []\n";
        assert_eq!(names_in(text, &["services"]), ["api"]);
        let mut hosts = names_in(text, &["hosts", "groups"]);
        hosts.sort();
        assert_eq!(hosts, ["db", "front", "web1"]);
        assert!(names_in("not = [toml", &["hosts"]).is_empty());
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            config_for_completion(&words(&["ferry", "--", "ferry", "-c", "x.toml", "logs"])),
            std::path::PathBuf::from("x.toml")
        );
        assert_eq!(
            config_for_completion(&words(&["ferry", "--config=y.toml", "logs"])),
            std::path::PathBuf::from("y.toml")
        );
    }

    #[test]
    fn completions_name_every_subcommand() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = String::from_utf8(completions(shell)).unwrap();
            for sub in man_commands() {
                assert!(text.contains(&sub), "{shell:?} lacks {sub}");
            }
            assert!(text.contains("since-deploy"), "{shell:?}");
        }
    }

    #[test]
    fn out_dir_writes_a_page_per_command() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_man_pages(dir.path()).unwrap();
        assert_eq!(written.len(), man_commands().len() + 1);
        for sub in ["deploy", "units", "exec", "completions", "man", "init"] {
            let p = dir.path().join(format!("ferry-{sub}.1"));
            assert!(
                std::fs::read_to_string(&p).unwrap().contains(".TH"),
                "{p:?}"
            );
        }
    }

    #[test]
    fn man_pages_render_for_ferry_and_each_command() {
        let page = String::from_utf8(man(None).unwrap()).unwrap();
        assert!(page.contains(".TH ferry 1"), "{page}");
        assert!(page.contains("deploy"));
        for sub in man_commands() {
            let page = String::from_utf8(man(Some(&sub)).unwrap()).unwrap();
            assert!(page.contains(&format!(".TH ferry-{sub} 1")), "{page}");
        }
        let deploy = String::from_utf8(man(Some("deploy")).unwrap()).unwrap();
        assert!(deploy.contains("dry\\-run"), "{deploy}");
        assert!(matches!(man(Some("nope")), Err(Error::Usage(_))));
        assert!(!page.contains("ferry\\-help"), "{page}");
        for word in [
            "FERRY_KEY_PASSPHRASE",
            "known_hosts",
            "NO_COLOR",
            "ssh/config",
        ] {
            assert!(page.contains(word), "ferry(1) does not mention {word}");
        }
        for sub in ["deploy", "status", "logs", "doctor", "rollback", "releases"] {
            let page = String::from_utf8(man(Some(sub)).unwrap()).unwrap();
            assert!(
                page.contains("Exit codes"),
                "ferry-{sub}(1) has no exit codes"
            );
        }
    }
}
