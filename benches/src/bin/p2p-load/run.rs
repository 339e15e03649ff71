//! Subcommand: one run.

use super::*;

pub(crate) fn run_one(args: &RunArgs) -> Res<()> {
    let rt = runtime()?;
    let (work, _guard) = work_dir(&args.spawn_opts)?;
    let mut children = Vec::new();
    let addr = match (&args.server, args.spawn, args.target) {
        (Some(server), _, _) => resolve(server)?,
        (None, true, Target::Directory) => {
            let log = if args.spawn_opts.no_log {
                None
            } else {
                let (child, addr) = spawn_log_service(&args.spawn_opts, &work)?;
                children.push(child);
                Some(addr)
            };
            let (child, addr) = spawn_directory(&args.spawn_opts, &work, log)?;
            children.push(child);
            addr
        }
        (None, true, Target::Log) => {
            let (child, addr) = spawn_log_service(&args.spawn_opts, &work)?;
            children.push(child);
            addr
        }
        (None, true, Target::Baseline) => {
            let (child, addr) = spawn_baseline(&args.spawn_opts, &work)?;
            children.push(child);
            addr
        }
        (None, false, Target::Baseline) => {
            MinimalServer::start(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                args.spawn_opts.server_threads,
            )?
            .addr
        }
        (None, false, _) => return Err("--server HOST:PORT or --spawn is required".into()),
    };
    let duration = Duration::from_secs_f64(args.seconds);
    let result = rt.block_on(async {
        match args.target {
            Target::Directory => {
                drive_directory(
                    &[addr],
                    args.clients,
                    duration,
                    Mix {
                        files: args.files,
                        search: false,
                    },
                    &run_prefix("s"),
                    false,
                )
                .await
            }
            Target::Baseline => {
                drive_directory(&[addr], args.clients, duration, Mix::BASELINE, "b", true).await
            }
            Target::Log => drive_log(addr, args.clients, duration, args.window).await,
        }
    });
    let what = match args.target {
        Target::Directory => "directory",
        Target::Baseline => "baseline",
        Target::Log => "log",
    };
    println!(
        "{what} {addr}, {} clients, {:.1} s",
        args.clients,
        result.elapsed.as_secs_f64()
    );
    println!("{}", result.line(what));
    for child in children.into_iter().rev() {
        child.interrupt(Duration::from_secs(10))?;
    }
    verdict(result.problem().into_iter().collect())
}
