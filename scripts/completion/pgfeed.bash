# bash completion for pgfeed. The option names are read from `pgfeed --help` of the pgfeed
# being completed, so they never disagree with it; the values of the options that take a
# word from a list are listed here. Installed as
# $datadir/bash-completion/completions/pgfeed (bash-completion loads it on demand).
_pgfeed()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]} words=
    case $prev in
    -f | --format) words="tsv csv text" ;;
    --header) words="auto match skip none" ;;
    --progress) words="auto auto-json bar json none" ;;
    --copy-format) words="auto binary text" ;;
    --mode) words="append replace upsert" ;;
    --on-conflict) words="update nothing" ;;
    --rejects | --cacert | --ca-file | --manifest)
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        return
        ;;
    --capath | --ca-path)
        mapfile -t COMPREPLY < <(compgen -d -- "$cur")
        return
        ;;
    -d | --db | -t | --table | -c | --columns | --null | --delimiter | --quote | -b | \
        --batch-rows | --batch-bytes | -j | --connections | --max-rejects | --state-table | \
        --timeout | --retries | --wait-for-db | --connect-timeout | --low-speed-time | \
        --progress-interval | --key | --encoding | --before | --after | --max-jobs)
        return
        ;;
    esac
    if [ -z "$words" ] && [[ $cur == -* ]]; then
        words=$("${COMP_WORDS[0]}" --help 2>/dev/null | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u)
    fi
    if [ -n "$words" ]; then
        mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
    else
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
    fi
}
complete -o filenames -F _pgfeed pgfeed
