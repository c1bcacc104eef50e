#!/usr/bin/env bash
# The hand-written baseline: page through the activity feed with curl, keep the
# events with jq, append them to a file. It reads pages in the API's order
# (newest first on the simulator) and appends them as they come, so unlike
# runtools-tail it neither orders nor deduplicates events.
#
# Usage: curl_jq.sh URL SINCE OUTPUT_FILE MAX_PAGES
# The API key comes from $RUNTOOLS_API_KEY.
set -euo pipefail

url=$1
since=$2
output=$3
max_pages=$4

: >"$output"
cursor=""
for ((page = 1; page <= max_pages; page++)); do
    arguments=(--get --data-urlencode "since=$since" --data-urlencode "limit=500")
    if [[ -n $cursor ]]; then
        arguments+=(--data-urlencode "cursor=$cursor")
    fi
    body=$(curl --silent --show-error --fail --max-time 30 \
        -H "Authorization: Bearer $RUNTOOLS_API_KEY" "${arguments[@]}" "$url/v1/activity")
    jq -c '.data.events[]' <<<"$body" >>"$output"
    cursor=$(jq -r 'if .hasMore then .nextCursor else empty end' <<<"$body")
    if [[ -z $cursor ]]; then
        exit 0
    fi
done
echo "curl_jq.sh: the feed still had more events after $max_pages pages" >&2
exit 1
