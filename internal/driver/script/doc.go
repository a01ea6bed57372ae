// Package script owns the script resource (class script): an operator's
// commands run at the steps of a run at a site, such as an Ansible
// playbook that turns the storage replication at the recovery site from
// read-only to read-write, or one that registers the virtual machines
// there (the active/passive pattern of RHV). Each step kind (fence,
// catch-up, promote, rejoin, unfence, and a drill's start and teardown)
// may have its own command; a kind without one does nothing. The
// commands run through internal/command, as a list of arguments without a
// shell unless the operator asks for one, bounded in time and in the
// output kept, and are told the run in SITEFLIP_* environment variables.
// A script holds no data and is not observed.
//
// Every command must be idempotent: a step whose controller is lost
// before it recorded the result is run again by the next one, so a
// command may run twice for one step, and again after it succeeded.
package script
