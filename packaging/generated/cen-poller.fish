# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_cen_poller_global_optspecs
    string join \n config= backfill= h/help V/version
end

function __fish_cen_poller_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_cen_poller_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_cen_poller_using_subcommand
    set -l cmd (__fish_cen_poller_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c cen-poller -n "__fish_cen_poller_needs_command" -l config -d 'The configuration file' -r -F
complete -c cen-poller -n "__fish_cen_poller_needs_command" -l backfill -d 'One-shot: fetch RANGE (`FROM..TO`, `FROM..` or a duration like `24h`), deliver, print a summary and exit' -r
complete -c cen-poller -n "__fish_cen_poller_needs_command" -s h -l help -d 'Print help'
complete -c cen-poller -n "__fish_cen_poller_needs_command" -s V -l version -d 'Print version'
complete -c cen-poller -n "__fish_cen_poller_needs_command" -f -a "check-config" -d 'Validate the configuration file and load every key and certificate it names'
complete -c cen-poller -n "__fish_cen_poller_needs_command" -f -a "status" -d 'Watermark, lag, counts by subject and path, sink backlogs, dead letters'
complete -c cen-poller -n "__fish_cen_poller_needs_command" -f -a "sign" -d 'Print the OAuth Authorization header for a request (or, with --base-string, the signature base string to compare with the one the gateway echoes on INVALID_SIGNATURE)'
complete -c cen-poller -n "__fish_cen_poller_needs_command" -f -a "dead-letters" -d 'List or retry notifications a sink gave up on'
complete -c cen-poller -n "__fish_cen_poller_needs_command" -f -a "demo" -d 'Simulator + daemon + file sink in a temporary directory, with a live summary'
complete -c cen-poller -n "__fish_cen_poller_needs_command" -f -a "manpage" -d 'Print the man page (roff) generated from this command line'
complete -c cen-poller -n "__fish_cen_poller_needs_command" -f -a "completions" -d 'Print shell completions for SHELL (bash, zsh, fish, elvish, powershell)'
complete -c cen-poller -n "__fish_cen_poller_needs_command" -f -a "simulate" -d 'A local stand-in for the CEN API (for `demo`, tests and trying things out)'
complete -c cen-poller -n "__fish_cen_poller_needs_command" -f -a "subscriptions" -d 'The client\'s subscriptions at Mastercard: list, show, create, update, delete, and plan/apply of the configuration\'s [[subscriptions]]'
complete -c cen-poller -n "__fish_cen_poller_needs_command" -f -a "fieldmappings" -d 'The fields subscriptions can filter on (GET /fieldmappings)'
complete -c cen-poller -n "__fish_cen_poller_needs_command" -f -a "audit" -d 'Check that the store holds everything the API has over RANGE (default: audit.range, 7 days), list what is missing, and with --repair store and deliver it. Exit 0 nothing missing (or all repaired), 4 missing, 3 a window could not be read'
complete -c cen-poller -n "__fish_cen_poller_needs_command" -f -a "replay" -d 'Re-deliver stored notifications created in RANGE'
complete -c cen-poller -n "__fish_cen_poller_needs_command" -f -a "migrate-state" -d 'Copy one machine\'s SQLite state (watermark, seen set, outbox, dead letters, last audit) into the PostgreSQL database of [state] (backend = "postgres"), whose schema must hold no notifications yet. Stop the daemon that uses the file first'
complete -c cen-poller -n "__fish_cen_poller_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand check-config" -l config -d 'The configuration file' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand check-config" -s h -l help -d 'Print help'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand status" -l config -d 'The configuration file' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand status" -l json -d 'Machine-readable output'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand status" -s h -l help -d 'Print help'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand sign" -l method -d 'HTTP method' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand sign" -l body-file -d 'The request body (default: empty, as for GET)' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand sign" -l nonce -d 'Reuse this nonce (to reproduce a request)' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand sign" -l timestamp -d 'Reuse this Unix timestamp (to reproduce a request)' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand sign" -l config -d 'The configuration file' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand sign" -l base-string -d 'Print the signature base string instead of the header'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand sign" -s h -l help -d 'Print help'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand dead-letters; and not __fish_seen_subcommand_from list retry help" -l config -d 'The configuration file' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand dead-letters; and not __fish_seen_subcommand_from list retry help" -s h -l help -d 'Print help'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand dead-letters; and not __fish_seen_subcommand_from list retry help" -f -a "list" -d 'List dead letters: sink, id, subject, attempts, when it died, last error'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand dead-letters; and not __fish_seen_subcommand_from list retry help" -f -a "retry" -d 'Put dead letters back in their sink\'s queue (attempts start again); a running daemon delivers them'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand dead-letters; and not __fish_seen_subcommand_from list retry help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand dead-letters; and __fish_seen_subcommand_from list" -l sink -d 'Only this sink\'s' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand dead-letters; and __fish_seen_subcommand_from list" -l id -d 'Only this notification\'s' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand dead-letters; and __fish_seen_subcommand_from list" -l config -d 'The configuration file' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand dead-letters; and __fish_seen_subcommand_from list" -l json -d 'Machine-readable output (every field, the whole last error)'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand dead-letters; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand dead-letters; and __fish_seen_subcommand_from retry" -l sink -d 'Only this sink\'s (default: every configured sink\'s)' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand dead-letters; and __fish_seen_subcommand_from retry" -l id -d 'Only this notification\'s' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand dead-letters; and __fish_seen_subcommand_from retry" -l config -d 'The configuration file' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand dead-letters; and __fish_seen_subcommand_from retry" -s h -l help -d 'Print help'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand dead-letters; and __fish_seen_subcommand_from help" -f -a "list" -d 'List dead letters: sink, id, subject, attempts, when it died, last error'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand dead-letters; and __fish_seen_subcommand_from help" -f -a "retry" -d 'Put dead letters back in their sink\'s queue (attempts start again); a running daemon delivers them'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand dead-letters; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand demo" -l duration -d 'Stop after this long (default: run until Ctrl-C)' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand demo" -l rate -d 'Notifications the simulator creates per second' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand demo" -l dir -d 'Keep the state and the sink here instead of a new temporary directory' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand demo" -l faults -d 'Fraction of the simulator\'s answers that are errors (5xx, 429, truncated bodies), to show that they cost nothing but retries' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand demo" -l config -d 'The configuration file' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand demo" -s h -l help -d 'Print help'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand manpage" -l config -d 'The configuration file' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand manpage" -s h -l help -d 'Print help'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand completions" -l config -d 'The configuration file' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand completions" -s h -l help -d 'Print help'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l listen -d 'Address to serve the API on (plain HTTP)' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l seed -d 'Seed of the generated notifications: the same seed gives the same notifications' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l rate -d 'Notifications created per second' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l backlog -d 'How much history exists at start (`30s`, `15m`, `24h`, `7d`)' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l count -d 'Stop after this many notifications (default: a live stream without end)' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l retention -d 'How long notifications stay pollable' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l max-limit -d 'Largest page served; larger `limit`s are capped' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l public-key -d 'Verify OAuth signatures with this certificate or PEM public key' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l consumer-key -d 'Accept only this consumer key (with --public-key)' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l error-rate -d 'Probability that a notifications request gets a 503' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l rate-limit-rate -d 'Probability that a notifications request gets a 429' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l retry-after -d '`Retry-After` of those 429s' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l slow-rate -d 'Probability that an answer is delayed by --slow-by' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l slow-by -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l truncate-rate -d 'Probability that a 200\'s JSON is cut in the middle' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l late-fraction -d 'Fraction of notifications that become visible --late-by after their creation' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l late-by -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l churn -d 'Probability, per page request with offset > 0, that one notification of the window expires and another appears (total unchanged)' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l push-url -d 'Also push the notifications to this URL (JSON arrays, like Mastercard)' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l push-cert -d 'Client certificate (PEM) to push with' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l push-key -d 'Its private key (PEM)' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l push-ca -d 'CA certificate (PEM) of the push endpoint\'s server certificate' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l push-drop -d 'Fraction of notifications never pushed (only pull can recover them)' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l push-duplicate -d 'Fraction of pushed notifications sent twice' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l push-batch-size -d 'Notifications per push request' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l push-max-attempts -d 'Attempts per push request before its notifications are FAILED' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -l config -d 'The configuration file' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand simulate" -s h -l help -d 'Print help'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and not __fish_seen_subcommand_from list show create update delete plan apply help" -l config -d 'The configuration file' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and not __fish_seen_subcommand_from list show create update delete plan apply help" -s h -l help -d 'Print help'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and not __fish_seen_subcommand_from list show create update delete plan apply help" -f -a "list" -d 'Every subscription: name, subject, active, id, filter'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and not __fish_seen_subcommand_from list show create update delete plan apply help" -f -a "show" -d 'One subscription, by name (or id)'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and not __fish_seen_subcommand_from list show create update delete plan apply help" -f -a "create" -d 'Create a subscription from FILE, a Subscription JSON object as the API takes it'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and not __fish_seen_subcommand_from list show create update delete plan apply help" -f -a "update" -d 'Replace the subscription NAME (or id) with FILE, a Subscription JSON object'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and not __fish_seen_subcommand_from list show create update delete plan apply help" -f -a "delete" -d 'Delete the subscription NAME (or id)'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and not __fish_seen_subcommand_from list show create update delete plan apply help" -f -a "plan" -d 'What `apply` would change, one line each; exit 0 in sync, 4 changes pending'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and not __fish_seen_subcommand_from list show create update delete plan apply help" -f -a "apply" -d 'Make the API\'s subscriptions match the configuration\'s `[[subscriptions]]`'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and not __fish_seen_subcommand_from list show create update delete plan apply help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from list" -l config -d 'The configuration file' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from list" -l json -d 'Machine-readable output (the API\'s SubscriptionDetails objects)'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from show" -l config -d 'The configuration file' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from show" -l json -d 'Machine-readable output'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from create" -l file -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from create" -l config -d 'The configuration file' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from update" -l file -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from update" -l config -d 'The configuration file' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from update" -s h -l help -d 'Print help'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from delete" -l config -d 'The configuration file' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from plan" -l config -d 'The configuration file' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from plan" -l prune -d 'Also delete subscriptions the configuration does not declare'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from plan" -s h -l help -d 'Print help'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from apply" -l config -d 'The configuration file' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from apply" -l prune -d 'Also delete subscriptions the configuration does not declare'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from apply" -s h -l help -d 'Print help'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from help" -f -a "list" -d 'Every subscription: name, subject, active, id, filter'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from help" -f -a "show" -d 'One subscription, by name (or id)'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a subscription from FILE, a Subscription JSON object as the API takes it'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from help" -f -a "update" -d 'Replace the subscription NAME (or id) with FILE, a Subscription JSON object'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete the subscription NAME (or id)'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from help" -f -a "plan" -d 'What `apply` would change, one line each; exit 0 in sync, 4 changes pending'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from help" -f -a "apply" -d 'Make the API\'s subscriptions match the configuration\'s `[[subscriptions]]`'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand subscriptions; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand fieldmappings" -l subject -d 'Only this subject\'s fields' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand fieldmappings" -l config -d 'The configuration file' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand fieldmappings" -l json -d 'Machine-readable output'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand fieldmappings" -s h -l help -d 'Print help'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand audit" -l config -d 'The configuration file' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand audit" -l repair -d 'Store the missing notifications and hand them to the sinks (received_via "audit")'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand audit" -l json -d 'Machine-readable output'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand audit" -s h -l help -d 'Print help'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand replay" -l sink -d 'Only to this sink (default: every sink whose filter matches)' -r
complete -c cen-poller -n "__fish_cen_poller_using_subcommand replay" -l config -d 'The configuration file' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand replay" -s h -l help -d 'Print help'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand migrate-state" -l from -d 'The SQLite state database to copy (the old `state.path`)' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand migrate-state" -l config -d 'The configuration file' -r -F
complete -c cen-poller -n "__fish_cen_poller_using_subcommand migrate-state" -s h -l help -d 'Print help'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand help; and not __fish_seen_subcommand_from check-config status sign dead-letters demo manpage completions simulate subscriptions fieldmappings audit replay migrate-state help" -f -a "check-config" -d 'Validate the configuration file and load every key and certificate it names'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand help; and not __fish_seen_subcommand_from check-config status sign dead-letters demo manpage completions simulate subscriptions fieldmappings audit replay migrate-state help" -f -a "status" -d 'Watermark, lag, counts by subject and path, sink backlogs, dead letters'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand help; and not __fish_seen_subcommand_from check-config status sign dead-letters demo manpage completions simulate subscriptions fieldmappings audit replay migrate-state help" -f -a "sign" -d 'Print the OAuth Authorization header for a request (or, with --base-string, the signature base string to compare with the one the gateway echoes on INVALID_SIGNATURE)'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand help; and not __fish_seen_subcommand_from check-config status sign dead-letters demo manpage completions simulate subscriptions fieldmappings audit replay migrate-state help" -f -a "dead-letters" -d 'List or retry notifications a sink gave up on'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand help; and not __fish_seen_subcommand_from check-config status sign dead-letters demo manpage completions simulate subscriptions fieldmappings audit replay migrate-state help" -f -a "demo" -d 'Simulator + daemon + file sink in a temporary directory, with a live summary'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand help; and not __fish_seen_subcommand_from check-config status sign dead-letters demo manpage completions simulate subscriptions fieldmappings audit replay migrate-state help" -f -a "manpage" -d 'Print the man page (roff) generated from this command line'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand help; and not __fish_seen_subcommand_from check-config status sign dead-letters demo manpage completions simulate subscriptions fieldmappings audit replay migrate-state help" -f -a "completions" -d 'Print shell completions for SHELL (bash, zsh, fish, elvish, powershell)'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand help; and not __fish_seen_subcommand_from check-config status sign dead-letters demo manpage completions simulate subscriptions fieldmappings audit replay migrate-state help" -f -a "simulate" -d 'A local stand-in for the CEN API (for `demo`, tests and trying things out)'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand help; and not __fish_seen_subcommand_from check-config status sign dead-letters demo manpage completions simulate subscriptions fieldmappings audit replay migrate-state help" -f -a "subscriptions" -d 'The client\'s subscriptions at Mastercard: list, show, create, update, delete, and plan/apply of the configuration\'s [[subscriptions]]'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand help; and not __fish_seen_subcommand_from check-config status sign dead-letters demo manpage completions simulate subscriptions fieldmappings audit replay migrate-state help" -f -a "fieldmappings" -d 'The fields subscriptions can filter on (GET /fieldmappings)'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand help; and not __fish_seen_subcommand_from check-config status sign dead-letters demo manpage completions simulate subscriptions fieldmappings audit replay migrate-state help" -f -a "audit" -d 'Check that the store holds everything the API has over RANGE (default: audit.range, 7 days), list what is missing, and with --repair store and deliver it. Exit 0 nothing missing (or all repaired), 4 missing, 3 a window could not be read'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand help; and not __fish_seen_subcommand_from check-config status sign dead-letters demo manpage completions simulate subscriptions fieldmappings audit replay migrate-state help" -f -a "replay" -d 'Re-deliver stored notifications created in RANGE'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand help; and not __fish_seen_subcommand_from check-config status sign dead-letters demo manpage completions simulate subscriptions fieldmappings audit replay migrate-state help" -f -a "migrate-state" -d 'Copy one machine\'s SQLite state (watermark, seen set, outbox, dead letters, last audit) into the PostgreSQL database of [state] (backend = "postgres"), whose schema must hold no notifications yet. Stop the daemon that uses the file first'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand help; and not __fish_seen_subcommand_from check-config status sign dead-letters demo manpage completions simulate subscriptions fieldmappings audit replay migrate-state help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand help; and __fish_seen_subcommand_from dead-letters" -f -a "list" -d 'List dead letters: sink, id, subject, attempts, when it died, last error'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand help; and __fish_seen_subcommand_from dead-letters" -f -a "retry" -d 'Put dead letters back in their sink\'s queue (attempts start again); a running daemon delivers them'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand help; and __fish_seen_subcommand_from subscriptions" -f -a "list" -d 'Every subscription: name, subject, active, id, filter'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand help; and __fish_seen_subcommand_from subscriptions" -f -a "show" -d 'One subscription, by name (or id)'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand help; and __fish_seen_subcommand_from subscriptions" -f -a "create" -d 'Create a subscription from FILE, a Subscription JSON object as the API takes it'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand help; and __fish_seen_subcommand_from subscriptions" -f -a "update" -d 'Replace the subscription NAME (or id) with FILE, a Subscription JSON object'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand help; and __fish_seen_subcommand_from subscriptions" -f -a "delete" -d 'Delete the subscription NAME (or id)'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand help; and __fish_seen_subcommand_from subscriptions" -f -a "plan" -d 'What `apply` would change, one line each; exit 0 in sync, 4 changes pending'
complete -c cen-poller -n "__fish_cen_poller_using_subcommand help; and __fish_seen_subcommand_from subscriptions" -f -a "apply" -d 'Make the API\'s subscriptions match the configuration\'s `[[subscriptions]]`'
