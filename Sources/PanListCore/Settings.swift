import Foundation

/// Setting keys the server reads, and their defaults (Alist's names).
public enum SettingKey {
    public static let version = "version"
    public static let siteTitle = "site_title"
    public static let token = "token"
    public static let signAll = "sign_all"
    public static let linkExpiration = "link_expiration"
    public static let textTypes = "text_types"
    public static let audioTypes = "audio_types"
    public static let videoTypes = "video_types"
    public static let imageTypes = "image_types"
    public static let proxyTypes = "proxy_types"
    public static let tokenExpiresIn = "token_expires_in"
    public static let webdavRedirectAgents = "webdav_redirect_agents"
}

public enum DefaultSettings {
    public static let version = "0.1.0"

    /// Settings created on first run. `token` gets a random value when created.
    public static func items(randomToken: String) -> [SettingItem] {
        let site = 1, style = 2, preview = 3, global = 4, offline = 5, index = 6
        // `help` says what each setting does in PanList; the ones kept only because Alist's clients and
        // front ends read them say so.
        let alistOnly = " Kept for Alist clients; PanList's own UI does not use it."
        return [
            SettingItem(key: SettingKey.version, value: version, help: "PanList's version (read-only).", group: site, flag: SettingItem.readonly),
            SettingItem(key: SettingKey.siteTitle, value: "PanList", help: "The name shown in the browser tab and the page header.", group: site),
            SettingItem(key: "announcement", value: "", help: "A notice shown at the top of every page (plain text). Leave empty for none.", type: "text", group: site),
            SettingItem(key: "pagination_type", value: "all", help: "How Alist's front end pages long folders." + alistOnly, type: "select", options: "all,pagination,load_more,auto_load_more", group: site),
            SettingItem(key: "default_page_size", value: "30", help: "Entries per page in Alist's front end." + alistOnly, type: "number", group: site),
            SettingItem(key: "allow_indexed", value: "false", help: "Whether search engines may index the site (Alist's front end)." + alistOnly, type: "bool", group: site),
            SettingItem(key: "allow_mounted", value: "true", help: "Whether Alist's front end may be embedded in other sites." + alistOnly, type: "bool", group: site),
            SettingItem(key: "logo", value: "", help: "Address of an image shown in the page header instead of the site title.", type: "text", group: style),
            SettingItem(key: "favicon", value: "", help: "Address of the browser tab icon; empty for PanList's own.", group: style),
            SettingItem(key: "main_color", value: "#1890ff", help: "The accent color of the UI, as #rrggbb.", group: style),
            SettingItem(key: SettingKey.textTypes, value: "txt,htm,html,xml,java,properties,sql,js,md,json,conf,ini,vue,php,py,bat,gitignore,yml,go,sh,c,cpp,h,hpp,tsx,vtt,srt,ass,rs,lrc", help: "File extensions previewed as text (comma-separated).", type: "text", group: preview, flag: SettingItem.private),
            SettingItem(key: SettingKey.audioTypes, value: "mp3,flac,ogg,m4a,wav,opus,wma", help: "File extensions played as audio (comma-separated).", type: "text", group: preview, flag: SettingItem.private),
            SettingItem(key: SettingKey.videoTypes, value: "mp4,mkv,avi,mov,rmvb,webm,flv,m3u8,ts,m2ts,wmv", help: "File extensions played as video (comma-separated).", type: "text", group: preview, flag: SettingItem.private),
            SettingItem(key: SettingKey.imageTypes, value: "jpg,tiff,jpeg,png,gif,bmp,svg,ico,swf,webp,avif,heic", help: "File extensions shown as images (comma-separated).", type: "text", group: preview, flag: SettingItem.private),
            SettingItem(key: SettingKey.proxyTypes, value: "m3u8", help: "File extensions that /d always streams through PanList instead of redirecting to the cloud (comma-separated).", type: "text", group: preview, flag: SettingItem.private),
            SettingItem(key: "audio_autoplay", value: "true", help: "Start audio as soon as its preview opens.", type: "bool", group: preview),
            SettingItem(key: "video_autoplay", value: "true", help: "Start video as soon as its preview opens.", type: "bool", group: preview),
            SettingItem(key: "hide_files", value: "/\\/README.md/i", help: "Regular expressions of names Alist's front end hides (one per line)." + alistOnly + " To hide names from everyone, use a folder rule.", type: "text", group: global),
            SettingItem(key: "package_download", value: "true", help: "Whether Alist's front end offers downloading a folder as one archive." + alistOnly, type: "bool", group: global),
            SettingItem(key: SettingKey.webdavRedirectAgents, value: "rclone,Infuse,Kodi,VLC,Lavf,mpv,nPlayer,Mozilla,Wget", help: "WebDAV clients known to follow redirects (parts of their User-Agent, comma-separated): they get the storage's redirect (webdav_policy 302_redirect or use_proxy_url). Every other client gets the bytes streamed through PanList, because clients such as cadaver and many NAS backup tools save a redirect as an empty file. * redirects every client.", type: "text", group: global, flag: SettingItem.private),
            SettingItem(key: SettingKey.signAll, value: "true", help: "Download links carry a sign (an HMAC of the path), so a link works without logging in and only for that file. Off: downloads need a login or the guest.", type: "bool", group: global, flag: SettingItem.private),
            SettingItem(key: SettingKey.linkExpiration, value: "0", help: "Hours a signed download link stays valid; 0 = no expiry.", type: "number", group: global, flag: SettingItem.private),
            SettingItem(key: "task_copy_workers", value: "3", help: "Copy tasks (between storages) each server runs at once.", type: "number", group: global, flag: SettingItem.private),
            SettingItem(key: "task_copy_max_retry", value: "2", help: "Times a copy task that failed on a passing error (network, a busy cloud) is tried again by itself.", type: "number", group: global, flag: SettingItem.private),
            SettingItem(key: "task_move_workers", value: "3", help: "Move tasks (between storages) each server runs at once.", type: "number", group: global, flag: SettingItem.private),
            SettingItem(key: "task_move_max_retry", value: "2", help: "Times a move task that failed on a passing error is tried again by itself.", type: "number", group: global, flag: SettingItem.private),
            SettingItem(key: "task_upload_workers", value: "3", help: "Upload tasks (uploads sent with As-Task) each server runs at once.", type: "number", group: global, flag: SettingItem.private),
            SettingItem(key: "task_upload_max_retry", value: "2", help: "Times an upload task that failed on a passing error is tried again by itself.", type: "number", group: global, flag: SettingItem.private),
            SettingItem(key: "task_offline_download_workers", value: "5", help: "Offline downloads each server runs at once.", type: "number", group: global, flag: SettingItem.private),
            SettingItem(key: "task_offline_download_max_retry", value: "2", help: "Times an offline download that failed on a passing error is tried again by itself.", type: "number", group: global, flag: SettingItem.private),
            SettingItem(key: "task_offline_download_transfer_workers", value: "3", help: "Transfers of downloaded files into their storage each server runs at once.", type: "number", group: global, flag: SettingItem.private),
            SettingItem(key: "task_offline_download_transfer_max_retry", value: "2", help: "Times a transfer of a downloaded file that failed on a passing error is tried again by itself.", type: "number", group: global, flag: SettingItem.private),
            SettingItem(key: "aria2_uri", value: "", help: "aria2's JSON-RPC address, such as http://127.0.0.1:6800/jsonrpc (empty: aria2 is not offered). aria2 must be able to write into PanList's temp folder.", type: "text", group: offline, flag: SettingItem.private),
            SettingItem(key: "aria2_secret", value: "", help: "aria2's RPC secret (--rpc-secret).", type: "text", group: offline, flag: SettingItem.private),
            SettingItem(key: OutboundGuard.settingKey, value: "", help: "Addresses or networks (such as 192.168.1.0/24) that offline downloads may fetch from although they are private, loopback or link-local; empty: only public addresses.", type: "text", group: offline, flag: SettingItem.private),
            SettingItem(key: "offline_max_size_gb", value: "0", help: "GB a file fetched by SimpleHttp may have at most; 0 = no limit.", type: "number", group: offline, flag: SettingItem.private),
            SettingItem(key: "offline_stall_minutes", value: "30", help: "Minutes an aria2 or cloud download may go without progress before it fails (a magnet without peers, a dead link); 0 = wait for ever.", type: "number", group: offline, flag: SettingItem.private),
            SettingItem(key: "search_index", value: "none", help: "Search: none (off) or database (an index kept in PanList's database, built, updated and cleared in Manage → Search index).", type: "select", options: "none,database", group: index),
            SettingItem(key: "auto_update_index", value: "true", help: "A folder listed fresh from its storage (when its cache ran out or on refresh) updates its entries in the index, so changes made outside PanList are found too.", type: "bool", group: index, flag: SettingItem.private),
            SettingItem(key: "ignore_paths", value: "", help: "Folders left out of the search index (one path per line; everything below them too).", type: "text", group: index, flag: SettingItem.private),
            SettingItem(key: "max_index_depth", value: "20", help: "How many folder levels below / the index goes; 0 = no limit.", type: "number", group: index, flag: SettingItem.private),
            SettingItem(key: "index_update_hours", value: "24", help: "Hours between scheduled updates of the whole index (to find what changed outside PanList); 0 = never.", type: "number", group: index, flag: SettingItem.private),
            SettingItem(key: "index_list_per_second", value: "2", help: "Listing calls an index walk makes on a cloud storage each second at most (a 123 Open folder of n entries takes ceil(n/100) calls), leaving the rest of the cloud's API budget to people browsing.", type: "number", group: index, flag: SettingItem.private),
            SettingItem(key: "task_index_workers", value: "1", help: "Index walks each server runs at once.", type: "number", group: index, flag: SettingItem.private),
            SettingItem(key: "multipart_enabled", value: "true", help: "Resumable uploads (tus at /api/fs/tus/ and OpenList's chunked /api/fs/multipart/ routes).", type: "bool", group: global),
            SettingItem(key: "multipart_chunk_size", value: "10", help: "MB a chunk of a resumable upload carries at most (the web UI sends files larger than this in chunks).", type: "number", group: global),
            SettingItem(key: "upload_session_hours", value: "24", help: "Hours a resumable upload may rest between two chunks before it is discarded.", type: "number", group: global, flag: SettingItem.private),
            SettingItem(key: "upload_sessions_per_user", value: "20", help: "Resumable uploads one user may have open at once.", type: "number", group: global, flag: SettingItem.private),
            SettingItem(key: "upload_max_size_gb", value: "0", help: "GB a resumable upload may declare at most; 0 = no limit of PanList's own (the storage's still apply).", type: "number", group: global, flag: SettingItem.private),
            SettingItem(key: SettingKey.token, value: randomToken, help: "The admin API token; also the key that signs download links (resetting it invalidates every link handed out).", group: 0, flag: SettingItem.private),
        ]
    }
}

/// Random strings for passwords, secrets and tokens.
public enum RandomString {
    static let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    public static func make(_ length: Int) -> String {
        var g = SystemRandomNumberGenerator()
        return String((0..<length).map { _ in alphabet[Int(g.next(upperBound: UInt64(alphabet.count)))] })
    }
}
