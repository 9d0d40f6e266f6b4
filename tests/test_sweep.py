# ruff: noqa: E501 - a table of test names, one entry a line
"""The containment sweep: every function in ``runner/`` and ``registry/``
that opens, creates, chmods, renames, removes or extracts a host path is
listed here with either the attacker's test that covers it or the reason
container and image content cannot reach it.

The list is checked against the code (an AST scan), so a new function that
touches host paths fails this test until someone says why it is safe; a
function that no longer touches one must leave the list, and every test
named must exist. Pure: no FUSE, no namespaces.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.pure    # no test bed needed: `pytest -m pure`

TOP = Path(__file__).resolve().parent.parent

# Calls that touch a host path (by name or through an fd from one).
OPS = {"open", "mkdir", "makedirs", "chmod", "fchmod", "chown", "lchown", "rename",
       "extract", "extractall", "rmtree", "unlink", "rmdir", "write_text", "write_bytes",
       "read_text", "read_bytes", "mkstemp", "mkdtemp", "symlink", "link", "mknod", "mkfifo",
       "utime", "copyfile", "copy2", "copytree", "move", "touch", "walk", "fwalk",
       "listdir", "scandir", "iterdir", "glob", "rglob",
       # the project's own safe openers count too: they still open a host path
       "read_file", "open_regular", "openat2", "ensure", "output_file"}

# -- why a function is safe ------------------------------------------------------------------
OWN = ("dockish's own state under the private store or runtime dir (0700, checked with lstat: "
       "tests/test_private_state.py); every name in it is made by dockish (digests, hex ids, "
       "fixed names), none comes from an image or a container")
USER = ("a path the user typed (a command-line argument or their own config file): followed as "
        "the user asked, with the user's own rights; no image or container names it")
KERNEL = "a fixed file of /proc, /sys or /etc that the kernel or the administrator writes"
INSIDE = ("runs after pivot_root/chroot into the container's root, as the container's user: "
          "names resolve inside that root, the host is not reachable from there")
LAYOUT = ("an image archive or layout the user handed over: member names are normalized "
          "(no '..', no absolute paths), data is read as streams and verified by digest, "
          "nothing is extracted on the host; blobs must be regular files")
ADMIN = ("configuration the administrator or the user keeps (registries.conf, certs.d, "
         "daemon.json): read as regular files only (no FIFO waits); the directory part is the "
         "registry host the user named")
FIXED = "a fixed device or the process's own stdio (/dev/null, /dev/ptmx)"
NOT_PATH = "not a host path (a method of the same name on a tar member, string or stream)"


def T(*names: str) -> str:
    """Covered by these tests (``file::name``)."""
    return "test: " + " ".join(names)


CONTAIN = "tests/test_containment.py::"
HOSTP = "tests/test_hostpaths.py::"
PRIV = "tests/test_private_state.py::"
BAD = "tests/test_badinput.py::"
API = "tests/test_api.py::"
TRUST = "tests/test_trust.py::"
CGROUPS = "tests/test_cgroups.py::"
STATS = "tests/test_stats.py::"

SWEEP: dict[str, str] = {
    # registry/: image archives, the store, auth
    "registry/archive.py:_DirFiles.open": LAYOUT,
    "registry/archive.py:_TarFiles.__init__": LAYOUT,
    "registry/archive.py:_import_layer": LAYOUT,
    "registry/archive.py:_open_tarball": USER,
    "registry/archive.py:_read": LAYOUT,
    "registry/archive_out.py:_Writer.__init__": USER,
    "registry/archive_out.py:_Writer.add_file": OWN,
    "registry/archive_out.py:_load_compressed": USER,
    "registry/archive_out.py:_raw_config": OWN,
    "registry/archive_out.py:load": USER,
    "registry/auth.py:write_config": USER + "; written with mkstemp and rename",
    "registry/auth.py:read_config": T(BAD + "test_config_file_that_is_a_fifo_does_not_hang_pull",
                                      BAD + "test_config_file_of_the_wrong_shape_is_one_line"),
    "registry/push.py:_send_layer": OWN,
    "registry/registries.py:_read": ADMIN + "; " + T(TRUST + "test_planted_fifo_and_garbage_are_refused_not_waited_on"),
    "registry/registries.py:conf_paths": ADMIN,
    "registry/registries.py:record_alias": (
        "the user's own cache file (~/.cache/containers/short-name-aliases.conf), written "
        "with mkstemp and rename; " + T("tests/test_registries_conf.py::test_short_name_mode")),
    "registry/trust.py:_load_client": ADMIN + "; " + T(TRUST + "test_client_certificate_for_mutual_tls"),
    "registry/trust.py:_read": ADMIN + "; " + T(TRUST + "test_planted_fifo_and_garbage_are_refused_not_waited_on"),
    "registry/trust.py:host_certs": ADMIN + "; " + T(TRUST + "test_ca_in_the_system_certs_d"),
    "registry/push.py:compress_layer": OWN,
    "registry/store.py:ImageStore._drop_layer": OWN,
    "registry/store.py:ImageStore._ensure": T(PRIV + "test_store_is_private_from_other_users",
                                              PRIV + "test_store_root_of_another_user_is_refused"),
    "registry/store.py:ImageStore._flock": OWN,
    "runner/runtime/container.py:container_refs": OWN,
    "registry/store.py:ImageStore.discard_layers": OWN,
    "registry/store.py:ImageStore.gc": OWN,
    "registry/store.py:ImageStore.get_blob": OWN,
    "registry/store.py:ImageStore.record": OWN,
    "registry/store.py:ImageStore.records": OWN,
    "registry/store.py:ImageStore.remove_record": OWN,
    "registry/store.py:ImageStore.tags": OWN,
    "registry/store.py:_write_atomic": OWN + "; O_EXCL|O_NOFOLLOW, 0600, renamed into place",
    # runner/: builds
    "runner/builder/build.py:Builder.__init__": OWN,
    "runner/builder/build.py:Builder._cache_dir": T(CONTAIN + "test_a_locked_cache_mount_holds_no_fd_into_the_host",
                                            PRIV + "test_store_is_private_from_other_users"),
    "runner/builder/build.py:Builder._do_run": OWN,
    "runner/builder/build.py:Builder._layer_step": T(HOSTP + "test_build_bind_copies_extract_with_the_same_rules"),
    "runner/builder/build.py:Builder._mount_reqs": OWN,
    "runner/builder/build.py:Builder._read_image_file": T(BAD + "test_chown_reads_the_images_passwd_never_a_fifo_or_the_host"),
    "runner/builder/build.py:Builder._secret": T(BAD + "test_dockerfile_flag_and_secret_source_must_be_regular_files"),
    "runner/builder/build.py:Builder._squash": OWN,
    "runner/builder/build.py:Builder._tmp": OWN,
    "runner/builder/build.py:Builder.close": OWN,
    "runner/builder/build.py:_Null.fileno": FIXED,
    "runner/builder/build.py:_materialize": T(HOSTP + "test_build_bind_copies_extract_with_the_same_rules"),
    "runner/builder/build.py:_remove_tree": OWN,
    "runner/builder/build.py:_upper_tar": OWN,
    "runner/builder/build.py:squash_tars": OWN,
        "runner/cli/build.py:register.build": USER + " (--iidfile)",
    "runner/builder/buildcache.py:BuildCache._lock": OWN,
    "runner/builder/buildcache.py:BuildCache.entries": OWN,
    "runner/builder/buildcache.py:BuildCache.get": OWN,
    "runner/builder/buildcache.py:BuildCache.prune": OWN,
    "runner/builder/buildcache.py:BuildCache.put": OWN,
    "runner/builder/context.py:ContextDir.__init__": T(BAD + "test_dockerfile_that_is_a_directory_or_a_symlink_out_of_the_context"),
    "runner/builder/context.py:ContextDir._openat": T(BAD + "test_dockerfile_that_is_a_directory_or_a_symlink_out_of_the_context",
                                              BAD + "test_context_file_that_is_a_fifo_does_not_hang_the_build"),
    "runner/builder/context.py:ContextDir.listdir": T(BAD + "test_context_file_that_is_a_fifo_does_not_hang_the_build"),
    "runner/builder/context.py:ImageTree.__init__": OWN,
    "runner/builder/context.py:_archive": OWN + " (ADD's archives are read as streams into the build's scratch)",
    "runner/builder/context.py:_fetch": OWN + " (ADD URL downloads land in mkstemp files of the build's scratch)",
    "runner/builder/context.py:_file_item": T(BAD + "test_context_file_that_is_a_fifo_does_not_hang_the_build"),
    "runner/builder/context.py:_unpack": OWN,
    "runner/builder/context.py:_unpack.reader": OWN,
    "runner/builder/context.py:_walk": T(BAD + "test_dockerfile_that_is_a_directory_or_a_symlink_out_of_the_context"),
    "runner/builder/context.py:expand_glob": T(BAD + "test_dockerfile_that_is_a_directory_or_a_symlink_out_of_the_context"),
    "runner/builder/context.py:write_tar": OWN,
    "runner/builder/dockerfile.py:parse_file": T(BAD + "test_dockerfile_flag_and_secret_source_must_be_regular_files"),
    "runner/builder/runmounts.py:cache_path": T(PRIV + "test_store_is_private_from_other_users"),
    # runner/: containers
    "runner/runtime/capabilities.py:limit_bounding": KERNEL,
        "runner/cli/main.py:layer_cmd": T(HOSTP + "test_output_files_are_all_or_nothing"),
    "runner/builder/commit.py:commit": OWN + " (the writable layer's journal and numbered data files)",
    "runner/runtime/container.py:Container._write_reserved": OWN,
    "runner/runtime/container.py:Container.clear_exit": OWN,
    "runner/runtime/container.py:Containers.all": OWN,
    "runner/runtime/container.py:Containers.claiming": OWN + " (ROOT/containers.lock, a fixed name)",
    "runner/runtime/container.py:Containers.create": OWN,
    "runner/runtime/container.py:Containers.remove": OWN + " (the writable layer holds numbered data "
                                                   "files, never a container's names)",
    "runner/runtime/container.py:_read_json": OWN,
    "runner/runtime/container.py:_write_json": OWN,
    "runner/runtime/container.py:process_tree": KERNEL,
    "runner/runtime/monitor.py:_monitor": OWN + " (log files of the container's own dir)",
    "runner/runtime/monitor.py:_go_behind": FIXED + " (a process going on after its client: run --sig-proxy=false's, run -it's or exec -it's after the detach keys; its stdio becomes /dev/null)",
    "runner/runtime/monitor.py:exec_stdio": FIXED,
    "runner/runtime/monitor.py:_carry_on_tty": OWN + " (the attach socket of the monitor going on after run -it's detach keys)",
    "runner/engine.py:env_overrides": T(BAD + "test_bad_env_file_is_one_line_for_run_create_and_exec"),
    "runner/runtime/labels.py:read_files": T("tests/test_filters.py::test_label_file_errors_are_one_line"),
        "runner/runtime/monitor.py:run_attached": OWN,
    "runner/runtime/logs.py:open_for_append": OWN + " (O_NOFOLLOW, 0600); " + T("tests/test_engine.py::test_logs_of_a_container_made_before_records_stay_readable"),
    "runner/runtime/logs.py:_convert_legacy": OWN + " (a temporary made O_EXCL|O_NOFOLLOW, then a rename); " + T("tests/test_engine.py::test_logs_of_a_container_made_before_records_stay_readable"),
    "runner/runtime/logs.py:_open_read": OWN + " (O_NOFOLLOW); " + T("tests/test_engine.py::test_logs_keep_stdout_and_stderr_apart_with_times", "tests/test_run_flags2.py::test_json_file_rotation_keeps_the_last_lines_and_logs_reads_across_files"),
    "runner/runtime/logs.py:LogWriter._rotate": OWN + " (the log's fixed names, NAME.1 ...); " + T("tests/test_run_flags2.py::test_json_file_rotation_keeps_the_last_lines_and_logs_reads_across_files"),
    "runner/runtime/nsmodes.py:write_sysctls": KERNEL + " (/proc/sys, walked with openat2 RESOLVE_BENEATH; only Docker's namespaced keys); " + T("tests/test_run_flags2.py::test_sysctls_are_written_in_the_containers_namespaces"),
    "runner/runtime/nsmodes.py:apply_oom_score_adj": KERNEL + " (/proc/self/oom_score_adj)",
    "runner/runtime/launch.py:_donor_shm": KERNEL + " (/proc/PID/ns/mnt) and the donor container's /dev/shm, resolved inside its root (openat2 RESOLVE_IN_ROOT, no magic links); " + T("tests/test_run_flags2.py::test_ipc_shareable_host_and_private", "tests/test_run_flags2.py::test_a_donor_that_plants_a_link_at_dev_shm_shares_nothing_of_the_host"),
    "runner/api/streams.py:LogRecords._moved_on": OWN + " (the container's log, O_NOFOLLOW)",
    "runner/runtime/logs.py:_read_legacy": OWN + " (O_NOFOLLOW); " + T("tests/test_engine.py::test_logs_of_a_container_made_before_records_stay_readable"),
    "runner/runtime/create.py:_make_mounts": USER + " (-v sources are made only when missing)",
    "runner/runtime/create.py:remove_container": OWN,
    "runner/engine.py:Engine.say_once": OWN,
    "runner/cli/containers.py:rename": NOT_PATH,
    "runner/cli/containers.py:write_cidfile": USER + " (--cidfile, written with mkstemp and rename); " + T("tests/test_run_flags.py::test_cidfile_is_written_and_an_existing_one_refused"),
    "runner/builder/buildoutput.py:write": USER + " (build --output dest=FILE: mkstemp and rename)",
    "runner/builder/buildoutput.py:_into_directory": USER + " (build --output type=local,dest=DIR: the image's files extracted with cp's rules, nothing followed); " + T("tests/test_run_flags.py::test_build_output_local_tar_and_stdout", "tests/test_run_flags.py::test_build_output_local_follows_no_link_an_image_planted"),
    "runner/runtime/cgroups.py:_open_top": KERNEL + " (/sys/fs/cgroup)",
    "runner/runtime/cgroups.py:_own": KERNEL + " (/proc/self/cgroup)",
    "runner/runtime/cgroups.py:_walk": KERNEL + " (cgroup directories, one component at a time, O_NOFOLLOW); " + T(CGROUPS + "test_cgroup_paths_are_walked_without_following_links"),
    "runner/runtime/cgroups.py:_read_at": KERNEL + " (a cgroup's files, O_NOFOLLOW below a walked directory fd)",
    "runner/runtime/cgroups.py:_write_at": KERNEL + " (a cgroup's limit files, O_NOFOLLOW below a walked directory fd); " + T(CGROUPS + "test_pids_limit_stops_forks_inside_and_shows_in_the_cgroup"),
    "runner/runtime/cgroups.py:_mkdir_fresh": T(CGROUPS + "test_the_child_cgroup_goes_with_run_rm_rm_and_a_killed_monitor"),
    "runner/runtime/cgroups.py:make": T(CGROUPS + "test_pids_limit_stops_forks_inside_and_shows_in_the_cgroup", CGROUPS + "test_cgroup_paths_are_walked_without_following_links"),
    "runner/runtime/cgroups.py:open_procs": T(CGROUPS + "test_pids_limit_stops_forks_inside_and_shows_in_the_cgroup", CGROUPS + "test_cgroup_paths_are_walked_without_following_links"),
    "runner/runtime/cgroups.py:_oom_in": T(CGROUPS + "test_memory_limit_oom_kills_with_137_and_oomkilled"),
    "runner/runtime/cgroups.py:_rmdir_waiting": T(CGROUPS + "test_the_child_cgroup_goes_with_run_rm_rm_and_a_killed_monitor", CGROUPS + "test_cgroup_paths_are_walked_without_following_links"),
    "runner/runtime/procopts.py:_seccomp_profile": USER + " (--security-opt seccomp=FILE: a regular file only)",
    "runner/runtime/restart.py:clear_stop": OWN,
    "runner/runtime/restart.py:monitor_gone": KERNEL + " (/proc/PID/stat)",
    "runner/runtime/restart.py:request_stop": OWN,
    "runner/engine.py:Engine.rename": OWN,
    "runner/engine.py:Engine.open_log": OWN + " (the container's log: O_NOFOLLOW, 0600)",
    "runner/runtime/exits.py:records_dir": OWN,
    "runner/runtime/exits.py:record": OWN + " (mkstemp then rename); " + T(API + "test_wait_answers_the_code_of_a_run_rm_container_cli_and_api"),
    "runner/runtime/exits.py:recorded": OWN + " (O_NOFOLLOW)",
    "runner/runtime/exits.py:forget_old": OWN,
    "runner/cli/containers.py:export": T(HOSTP + "test_output_files_are_all_or_nothing"),
    "runner/runtime/freezer.py:_syncfs_root": INSIDE,
    "runner/runtime/freezer.py:container_pids": KERNEL,
    "runner/runtime/hostfs.py:_Dirs.leave_to": T(HOSTP + "test_cp_out_replaces_a_symlink_it_left_instead_of_writing_through_it"),
    "runner/runtime/hostfs.py:_enter": T(HOSTP + "test_cp_out_replaces_a_symlink_it_left_instead_of_writing_through_it",
                                 HOSTP + "test_a_hostile_stream_cannot_link_or_write_outside_the_copy"),
    "runner/runtime/hostfs.py:_member": T(HOSTP + "test_a_hostile_stream_cannot_link_or_write_outside_the_copy",
                                  HOSTP + "test_hardlinks_copied_out_land_inside_dest_as_links_to_each_other",
                                  HOSTP + "test_as_root_device_nodes_and_set_id_bits_need_cp_a"),
    "runner/runtime/hostfs.py:_open_for_removal": T(HOSTP + "test_volume_rm_removes_planted_symlinks_without_chmodding_their_targets"),
    "runner/runtime/hostfs.py:_path_fd": T(HOSTP + "test_volume_rm_removes_planted_symlinks_without_chmodding_their_targets"),
    "runner/runtime/hostfs.py:remove_tree": T(HOSTP + "test_rm_v_and_volume_prune_do_not_chmod_through_symlinks",
                                      HOSTP + "test_a_3000_level_tree_round_trips_through_cp_and_export"),
    "runner/engine.py:Engine.df": OWN,
    "runner/engine.py:Engine.system_df": OWN + " (the build cache mounts' directories)",
    "runner/runtime/restart.py:current": OWN + " (the container's config.json)",
    "runner/runtime/stats.py:members": KERNEL + " (/proc's process directories)",
    "runner/runtime/stats.py:_read": KERNEL + " (/proc/stat, /proc/meminfo and a container's /proc/PID/stat, statm, io, net/dev)",
    "runner/runtime/cgroups.py:_move": KERNEL + " (cgroup.procs, O_NOFOLLOW below a walked directory fd); " + T(STATS + "test_update_changes_a_running_containers_limits_at_once"),
    "runner/engine.py:_NullOut.fileno": FIXED,
    "runner/runtime/hostfs.py:disk_usage": OWN,
    "runner/cli/images.py:save": T(HOSTP + "test_output_files_are_all_or_nothing"),
    "runner/runtime/launch.py:_hold_nothing": FIXED,
    "runner/runtime/launch.py:_open_workdir": T(CONTAIN + "test_workdir_through_proc_self_fd_reaches_nothing_of_the_host",
                                        CONTAIN + "test_run_and_exec_refuse_a_workdir_outside_the_root"),
    "runner/runtime/launch.py:_read_view_file": T(CONTAIN + "test_a_fifo_for_etc_passwd_does_not_hang_exec_or_healthchecks"),
    "runner/runtime/launch.py:_wire_stdio": FIXED,
    "runner/runtime/launch.py:Launch.spawn": NOT_PATH + " (netns.ensure: the networks' holder)",
    "runner/runtime/namespaces.py:_read": KERNEL,
    "runner/runtime/namespaces.py:apply_mapping": KERNEL,
    "runner/runtime/namespaces.py:join": KERNEL,
    "runner/runtime/namespaces.py:proc_start_time": KERNEL,
    "runner/runtime/netns.py:_detach": OWN,
    "runner/runtime/netns.py:_kill_aardvark": OWN + "; and " + KERNEL + " (/proc/PID/cmdline)",
    "runner/runtime/netns.py:_make_holder": OWN,
    "runner/runtime/netns.py:_read_json": OWN,
    "runner/runtime/netns.py:_reconcile": OWN,
    "runner/runtime/netns.py:_stop_holder": OWN,
    "runner/runtime/netns.py:_stop_if_unused": OWN,
    "runner/runtime/netns.py:_write_json": OWN,
    "runner/runtime/netns.py:attach": OWN,
    "runner/runtime/netns.py:attached": OWN,
    "runner/runtime/netns.py:locked": OWN,
    "runner/runtime/netns.py:state_dir": OWN,
    "runner/runtime/netplan.py:plan": KERNEL,
    "runner/runtime/netplan.py:joined_resolv": KERNEL + " (/etc/resolv.conf)",
    "runner/runtime/networks.py:Networks._deciding": OWN + " (networks/.lock, a fixed name)",
    "runner/runtime/networks.py:Networks._write": OWN + " (a network's file name is its name, checked "
                                          "against [a-zA-Z0-9][a-zA-Z0-9_.-]*: no '/', no '..')",
    "runner/runtime/networks.py:Networks.all": OWN,
    "runner/runtime/networks.py:Networks.remove": OWN + " (names of records dockish wrote)",
    "runner/runtime/network.py:Pasta.__init__": OWN,
    "runner/runtime/network.py:Slirp.__init__": OWN,
    "runner/runtime/network.py:_has_default_route": KERNEL,
    "runner/cli/man.py:write_pages": USER + " (scripts/man's DIR; the file names are "
                                     "dockish's command names)",
    "runner/runtime/outfile.py:current_umask": KERNEL + " (/proc/self/status)",
    "runner/runtime/outfile.py:output_file": T(HOSTP + "test_output_files_are_all_or_nothing"),
    "runner/preflight.py:_device": KERNEL + " (the host's /dev/fuse and /dev/net/tun, opened O_NONBLOCK); " + T("tests/test_preflight.py::test_dev_fuse_missing_unusable_or_not_a_device"),
    "runner/preflight.py:_read_small": KERNEL + " (/proc/sys, cgroup files, /etc/subuid: regular files only)",
    "runner/preflight.py:userns_probe": KERNEL + " (its own /proc/self/uid_map in a forked probe)",
    "runner/runtime/rootfs.py:_mkfile": INSIDE.replace("runs after", "runs in the container's mount "
                                               "namespace before its process starts; symlinks "
                                               "are resolved by hand and clamped at the root, "
                                               "as after") + "; " + T(CONTAIN + "test_a_read_only_bind_is_read_only_below_its_submounts"),
    "runner/runtime/rootfs.py:_remount_read_only": KERNEL + " (/proc/self/mountinfo)",
    "runner/runtime/rootfs.py:_resolve": T(CONTAIN + "test_a_read_only_bind_is_read_only_below_its_submounts",
                                   CONTAIN + "test_run_and_exec_refuse_a_workdir_outside_the_root"),
    "runner/runtime/rootfs.py:_setup_dev": "a fresh tmpfs made for the container's /dev",
    "runner/runtime/rootfs.py:init_layer_tar": KERNEL + " (/etc/resolv.conf)",
    "runner/runtime/rootfs.py:make_init_layer": KERNEL + " (/etc/resolv.conf)",
    "runner/runtime/rootfs.py:offline_tree": OWN,
    "runner/runtime/view.py:offline_view": OWN,
    "runner/runtime/rootfs.py:remove_init_layer": T(CONTAIN + "test_run_steps_leave_no_init_layer"),
    "runner/runtime/rootfs.py:serve_view": OWN,
    "runner/runtime/rootfs.py:view_lower": OWN + " (the store's layer tars)",
    "runner/runtime/viewd.py:spawn": OWN + " (the view daemon's log, O_NOFOLLOW)",
    "runner/sysinfo.py:_mem_total": KERNEL,
    "runner/sysinfo.py:_os_name": KERNEL,
    "runner/runtime/events.py:record": OWN + " (O_APPEND|O_NOFOLLOW, 0600; the rotation renames within the store root); " + T("tests/test_engine.py::test_events_follow_and_a_planted_symlink_is_not_written_through"),
    "runner/runtime/events.py:_open": OWN + " (O_NOFOLLOW)",
    "runner/runtime/transfer.py:_TreeWriter.add": T(HOSTP + "test_a_3000_level_tree_round_trips_through_cp_and_export",
                                            HOSTP + "test_export_of_a_running_container_leaves_mounted_host_files_out"),
    "runner/runtime/transfer.py:extract_into": T(HOSTP + "test_cp_out_replaces_a_symlink_it_left_instead_of_writing_through_it"),
    "runner/runtime/transfer.py:open_dir": INSIDE + " (openat2 without magic links)",
    "runner/runtime/transfer.py:extract_all": T(HOSTP + "test_build_bind_copies_extract_with_the_same_rules"),
    "runner/runtime/transfer.py:mountpoints": KERNEL + " (/proc/PID/mountinfo); " + T(HOSTP + "test_export_of_a_running_container_leaves_mounted_host_files_out"),
    "runner/runtime/transfer.py:write_tree": T(HOSTP + "test_a_3000_level_tree_round_trips_through_cp_and_export"),
    "runner/runtime/tty.py:listen": T(PRIV + "test_runtime_dir_squatted_by_another_user"),
    "runner/runtime/volumes.py:Volumes.create": T(HOSTP + "test_a_volume_name_with_a_trailing_newline_is_refused"),
    "runner/runtime/volumes.py:Volumes.inspect": OWN,
    "runner/runtime/volumes.py:Volumes.names": OWN,
    "runner/runtime/volumes.py:remove_in": T(HOSTP + "test_volume_rm_removes_planted_symlinks_without_chmodding_their_targets"),
    # the template engine walks its own parse tree
    "runner/cli/gotemplate.py:Template.execute": NOT_PATH,
    "runner/cli/gotemplate.py:_State.walk": NOT_PATH,
    "runner/cli/gotemplate.py:_State.walk_range": NOT_PATH,
    "runner/cli/gotemplate.py:_State.walk_template": NOT_PATH,
    # runner/api/: the Docker Engine API server
    "runner/api/containers.py:ContainerApi.rename.do": OWN,
    "runner/builder/contexttar.py:extracted": T(API + "test_a_hostile_build_context_tar_reaches_nothing_of_the_host", "tests/test_build.py::test_build_from_stdin_dockerfile_or_context_tar"),
    "runner/builder/contexttar.py:read_dockerfile": T(API + "test_a_hostile_build_context_tar_reaches_nothing_of_the_host"),
    "runner/runtime/stdinrelay.py:serve.stop_serving": OWN + " (the attach socket's fixed name in the runtime dir)",
    "runner/api/server.py:Server.serve": T(API + "test_a_squatted_socket_path_is_refused"),
    "runner/api/server.py:listen_unix": T(API + "test_a_squatted_socket_path_is_refused",
                                          API + "test_socket_is_private_and_versions_negotiate"),
    "runner/api/system.py:SystemApi._basics": KERNEL,
}


def _touches_host(call: ast.Call) -> bool:
    f = call.func
    if isinstance(f, ast.Attribute):
        if f.attr in OPS:
            return True
        # os.replace / Path.replace(target); str.replace takes two arguments
        if f.attr == "replace":
            base = f.value
            if isinstance(base, ast.Name) and base.id == "os":
                return True
            if isinstance(base, ast.Name) and base.id == "dataclasses":
                return False
            return len(call.args) == 1 and not call.keywords
        return False
    return isinstance(f, ast.Name) and f.id in OPS


def scan() -> dict[str, set[str]]:
    """``module:qualified.function`` -> the host-path calls made in it."""
    found: dict[str, set[str]] = {}
    for pkg in ("runner", "registry"):
        for path in sorted((TOP / pkg).rglob("*.py")):
            rel = path.relative_to(TOP).as_posix()

            def visit(node: ast.AST, stack: list[str], rel: str = rel) -> None:
                for ch in ast.iter_child_nodes(node):
                    if isinstance(ch, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                        visit(ch, [*stack, ch.name])
                        continue
                    if isinstance(ch, ast.Call) and _touches_host(ch):
                        f = ch.func
                        name = f.attr if isinstance(f, ast.Attribute) else f.id  # type: ignore[union-attr]
                        found.setdefault(f"{rel}:{'.'.join(stack) or '<module>'}", set()).add(name)
                    visit(ch, stack)
            visit(ast.parse(path.read_text()), [])
    return found


def test_every_host_path_function_is_in_the_sweep():
    found = scan()
    missing = sorted(set(found) - set(SWEEP))
    assert not missing, ("functions that touch host paths with no test or reason in "
                         "tests/test_sweep.py:\n" + "\n".join(f"  {m} {sorted(found[m])}"
                                                             for m in missing))


def test_the_sweep_lists_no_function_that_is_gone():
    found = scan()
    stale = sorted(k for k, why in SWEEP.items() if k not in found and why != NOT_PATH)
    assert not stale, "listed in the sweep but no longer touching host paths: " + ", ".join(stale)


def test_every_test_the_sweep_names_exists():
    missing = []
    for why in SWEEP.values():
        for ref in re.findall(r"(tests/\S+\.py)::(\w+)", why):
            file, name = ref
            if not re.search(rf"^def {name}\(", (TOP / file).read_text(), re.M):
                missing.append(f"{file}::{name}")
    assert not missing, "the sweep names tests that do not exist: " + ", ".join(missing)
